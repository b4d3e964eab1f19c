"""Every convolution of resnet20 and resnet18 (the registry's CIFAR variants, batch 128) timed alone:
forward, input gradient and weight gradient, in JAX as XLA computes them, in JAX as cnnzoo computes
them (``cnnzoo.models.layers.conv_general_dilated``: on the CPU the weight gradient by chunks of the
batch), and in PyTorch (eager, float32, NCHW as the twins run). Issue 31.3.

The thread count is the process's: ``--threads 1`` pins the process to one CPU before JAX and
PyTorch start (XLA sizes its pool by the CPUs it may use; PyTorch gets ``set_num_threads(1)``), so
run the script once per thread count. Each shape's variants are timed interleaved, median of
``--reps``. Usage (the venv active, nothing else running):

    python benchmarks/conv_shapes.py --threads 2 --out results/cpu/profile/conv_shapes_2threads
    python benchmarks/conv_shapes.py --threads 1 --out results/cpu/profile/conv_shapes_1thread
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--threads', type=int, choices=(1, 2), default=2)
    parser.add_argument('--models', default='resnet20,resnet18')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--reps', type=int, default=7)
    parser.add_argument('--out', required=True, help='prefix of the .json and .md written')
    return parser.parse_args(argv)


def conv_shapes(model_name: str, batch_size: int) -> list[dict]:
    """(input shape, kernel shape, stride, padding) of every nn.Conv call in a training forward pass,
    in order, with how many layers share each shape."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from cnnzoo.bench.variants import model_fields
    from cnnzoo.models import create_model

    num_classes, fields = model_fields(model_name, 32)
    model = create_model(model_name, num_classes=num_classes, **fields)
    seen: dict[tuple, dict] = {}

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, nn.Conv) and context.method_name == '__call__':
            conv = context.module
            x = args[0]
            key = (tuple(x.shape), (*conv.kernel_size, x.shape[-1], conv.features), tuple(conv.strides),
                   tuple(map(tuple, conv.padding)))
            seen.setdefault(key, {'model': model_name, 'input': key[0], 'kernel': key[1], 'stride': key[2][0],
                                  'padding': key[3][0][0], 'layers': 0})['layers'] += 1
        return next_fun(*args, **kwargs)

    x = jnp.zeros((batch_size, 32, 32, 3))
    with nn.intercept_methods(record):
        jax.eval_shape(lambda: model.init_with_output({'params': jax.random.PRNGKey(0)}, x, train=True))
    return list(seen.values())


def jax_ops(shape: dict, conv_fn) -> dict[str, Callable[[], object]]:
    """Forward, input gradient and weight gradient of one convolution through ``conv_fn``, compiled,
    each a thunk that returns when the result is ready."""
    import jax
    import numpy as np
    from jax import lax

    rng = np.random.default_rng(0)
    x = jax.device_put(rng.standard_normal(shape['input'], np.float32))
    w = jax.device_put(rng.standard_normal(shape['kernel'], np.float32))
    s, p = shape['stride'], shape['padding']
    dims = lax.conv_dimension_numbers(x.shape, w.shape, ('NHWC', 'HWIO', 'NHWC'))

    def conv(x, w):
        return conv_fn(x, w, (s, s), ((p, p), (p, p)), dimension_numbers=dims)

    g = jax.device_put(rng.standard_normal(jax.eval_shape(conv, x, w).shape, np.float32))
    forward = jax.jit(conv)
    input_grad = jax.jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])
    weight_grad = jax.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])
    return {'forward': lambda: forward(x, w).block_until_ready(),
            'input_grad': lambda: input_grad(x, w, g).block_until_ready(),
            'weight_grad': lambda: weight_grad(x, w, g).block_until_ready()}


def torch_ops(shape: dict) -> dict[str, Callable[[], object]]:
    """The same three in PyTorch eager (NCHW, float32), each through autograd with only the operand
    the gradient is for requiring one."""
    import torch

    n, h, w_, cin = shape['input']
    kh, kw, _, cout = shape['kernel']
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, cin, h, w_, generator=gen)
    w = torch.randn(cout, cin, kh, kw, generator=gen)
    s, p = shape['stride'], shape['padding']
    g = torch.randn_like(torch.nn.functional.conv2d(x, w, stride=s, padding=p))

    def forward():
        with torch.no_grad():
            return torch.nn.functional.conv2d(x, w, stride=s, padding=p)

    def grad(wrt: str):
        xx, ww = x.detach().requires_grad_(wrt == 'x'), w.detach().requires_grad_(wrt == 'w')
        return torch.autograd.grad(torch.nn.functional.conv2d(xx, ww, stride=s, padding=p), xx if wrt == 'x' else ww, g)

    return {'forward': forward, 'input_grad': lambda: grad('x'), 'weight_grad': lambda: grad('w')}


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.threads == 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import numpy as np
    import torch
    from jax import lax

    from cnnzoo.bench.environment import environment, loadavg, write_json_and_markdown
    from cnnzoo.models.layers import conv_general_dilated

    torch.set_num_threads(args.threads)
    meta = environment(threads=args.threads, torch_threads=torch.get_num_threads(), reps=args.reps)
    print(f'load before: {meta["loadavg_before"]}; threads {args.threads}; cpus usable {meta["cpus_usable"]}',
          flush=True)
    variants = {'jax-xla': lambda s: jax_ops(s, lax.conv_general_dilated),
                'jax-cnnzoo': lambda s: jax_ops(s, conv_general_dilated), 'torch-eager': torch_ops}
    rows = []
    for model_name in args.models.split(','):
        for shape in conv_shapes(model_name, args.batch_size):
            ops = {name: make(shape) for name, make in variants.items()}
            times: dict[tuple[str, str], list[float]] = {}
            for thunks in ops.values():  # compile and warm up
                for thunk in thunks.values():
                    thunk()
            for _ in range(args.reps):
                for name, thunks in ops.items():
                    for op, thunk in thunks.items():
                        t0 = time.perf_counter()
                        thunk()
                        times.setdefault((name, op), []).append(time.perf_counter() - t0)
            row = {**shape, 'ms': {f'{name}/{op}': float(np.median(t)) * 1e3 for (name, op), t in times.items()}}
            rows.append(row)
            ms = row['ms']
            print(f'{model_name} {shape["input"]} k{shape["kernel"]} s{shape["stride"]} x{shape["layers"]}: '
                  + ' '.join(f'{k} {v:.1f}' for k, v in ms.items()), flush=True)
    meta['loadavg_after'] = loadavg()
    print(f'load after: {meta["loadavg_after"]}', flush=True)
    write_json_and_markdown(args.out, {'meta': meta, 'rows': rows}, markdown(rows, meta))
    return 0


def markdown(rows: list[dict], meta: dict) -> str:
    """One line per shape: ms per op for XLA, cnnzoo and PyTorch, and the ratios that matter."""
    head = (f'Threads: {meta["flags"]["threads"]}; load {meta["loadavg_before"]} -> {meta["loadavg_after"]}; '
            f'{meta["cpu"]}; jax {meta["versions"]["jax"]}, torch {meta["versions"].get("torch")}. '
            'Milliseconds, median; "layers": how many layers of the model have the shape.\n\n'
            '| model | input (NHWC) | kernel (HWIO) | stride | layers | fwd XLA | fwd torch | dX XLA | dX torch '
            '| dW XLA | dW cnnzoo | dW torch | dW XLA / cnnzoo | cnnzoo fwd+dX+dW / torch |\n'
            '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n')
    lines = []
    for r in rows:
        ms = r['ms']
        ours = ms['jax-cnnzoo/forward'] + ms['jax-cnnzoo/input_grad'] + ms['jax-cnnzoo/weight_grad']
        torch_total = ms['torch-eager/forward'] + ms['torch-eager/input_grad'] + ms['torch-eager/weight_grad']
        lines.append(f'| {r["model"]} | {"x".join(map(str, r["input"]))} | {"x".join(map(str, r["kernel"]))} '
                     f'| {r["stride"]} | {r["layers"]} | {ms["jax-xla/forward"]:.1f} | {ms["torch-eager/forward"]:.1f} '
                     f'| {ms["jax-xla/input_grad"]:.1f} | {ms["torch-eager/input_grad"]:.1f} '
                     f'| {ms["jax-xla/weight_grad"]:.1f} | {ms["jax-cnnzoo/weight_grad"]:.1f} '
                     f'| {ms["torch-eager/weight_grad"]:.1f} '
                     f'| {ms["jax-xla/weight_grad"] / ms["jax-cnnzoo/weight_grad"]:.2f}x '
                     f'| {ours / torch_total:.2f}x |')
    return head + '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
