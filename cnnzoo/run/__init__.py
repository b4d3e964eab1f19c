"""One training run, from an experiment's config to its run directory.

- :mod:`~cnnzoo.run.setup`: the data, model, schedule, mesh and initial state of a config;
- :mod:`~cnnzoo.run.loop`: the loop (``train_and_evaluate``), reading straight through;
- :mod:`~cnnzoo.run.feeds`: how batches reach the jitted steps, for training and evaluation;
- :mod:`~cnnzoo.run.mesh`, :mod:`~cnnzoo.run.distributed`: devices and processes;
- :mod:`~cnnzoo.run.supervise`: a process of a multi-process run that loses another ends in one line;
- :mod:`~cnnzoo.run.signals`: stop signals, for the loop and the sweep alike;
- :mod:`~cnnzoo.run.workdir`: the one owner of the run directory's format;
- :mod:`~cnnzoo.run.checkpoints`: orbax checkpoints, damaged ones set aside;
- :mod:`~cnnzoo.run.progress`: what a run prints as it goes;
- :mod:`~cnnzoo.run.validation`: the checks of a whole config, before anything runs;
- :mod:`~cnnzoo.run.evaluate`: a checkpoint (or a PyTorch state_dict) on the evaluation split.
"""
