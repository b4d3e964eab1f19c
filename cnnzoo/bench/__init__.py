"""Measurements: JAX against PyTorch in speed (:mod:`~cnnzoo.bench.speed`, with the PyTorch side in
:mod:`~cnnzoo.bench.torch_variants`) and in accuracy (:mod:`~cnnzoo.bench.accuracy`), and the streaming
input path alone (:mod:`~cnnzoo.bench.input`). PyTorch is imported only by the variants that need it."""
