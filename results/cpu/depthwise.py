"""Depthwise and 1x1 convolutions on the CPU: XLA's convolutions against cnnzoo's forms of them
(``layers.conv_general_dilated``: a shifted sum, a matrix product), side by side in one process.

    python results/cpu/depthwise.py --out results/cpu/depthwise

Part 1 times the forward and backward pass (gradients for input and kernel) of one layer at each
shape of resnet20's inverted bottleneck (expansion 6, batch 128): the depthwise 3x3 layers, then the
1x1 expansions and projections; both forms jitted, interleaved in rounds, their outputs compared. Part 2 is cnnzoo.bench.speed's interleaved
training-step benchmark of resnet20 with ``residual='inverted_bottleneck'``: "-before" builds the
step with every depthwise and 1x1 layer through ``lax.conv_general_dilated`` (as before), the
plain variant as cnnzoo is now, PyTorch eager float32 beside them. Kept with the results it
produced; not a tool.
"""
import argparse
import statistics
import time
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

import cnnzoo.bench.speed as bench
from cnnzoo.models import cifar_fields, layers

# (height, channels, stride) of each depthwise layer of resnet20 with expansion 6: stage 1 expands
# 16 -> 96; the first blocks of stages 2 and 3 expand their 16- and 32-channel inputs and stride.
SHAPES = [(32, 96, 1), (32, 96, 2), (16, 192, 1), (16, 192, 2), (8, 384, 1)]
# (height, input channels, output channels) of its 1x1 layers: stage 1's expansion and projection,
# stage 2's and 3's (at the resolution after the stride).
POINTWISE = [(32, 16, 96), (32, 96, 16), (16, 32, 192), (16, 192, 32), (8, 64, 384), (8, 384, 64)]
IB = {'residual': 'inverted_bottleneck'}


def convolution(conv_fn, x, w, s):
    pad = w.shape[0] // 2
    return conv_fn(x, w, (s, s), ((pad, pad), (pad, pad)),
                   dimension_numbers=lax.conv_dimension_numbers(x.shape, w.shape, layers._NHWC),
                   feature_group_count=x.shape[-1] // w.shape[2])


def layer_table(batch, rounds):
    print('| layer (N x H x W x C, kernel, stride) | XLA conv fwd+bwd ms | cnnzoo fwd+bwd ms | ratio | '
          'max abs difference of outputs |\n|---|---:|---:|---:|---:|', flush=True)
    cases = [((batch, h, h, c), (3, 3, 1, c), s) for h, c, s in SHAPES]
    cases += [((batch, h, h, ci), (1, 1, ci, co), 1) for h, ci, co in POINTWISE]
    for x_shape, w_shape, s in cases:
        x = jax.random.normal(jax.random.key(0), x_shape)
        w = jax.random.normal(jax.random.key(1), w_shape) * 0.3
        xla_conv = partial(convolution, lax.conv_general_dilated)
        cnnzoo_conv = partial(convolution, layers.conv_general_dilated)
        fns = {name: jax.jit(jax.grad(lambda x, w, f=f: jnp.sum(f(x, w, s) ** 2), argnums=(0, 1)))
               for name, f in (('xla', xla_conv), ('cnnzoo', cnnzoo_conv))}
        times = {name: [] for name in fns}
        for f in fns.values():
            jax.block_until_ready(f(x, w))
        for _ in range(rounds):
            for name, f in fns.items():
                t0 = time.perf_counter()
                jax.block_until_ready(f(x, w))
                times[name].append(time.perf_counter() - t0)
        diff = float(jnp.max(jnp.abs(jax.jit(xla_conv, static_argnums=2)(x, w, s)
                                     - jax.jit(cnnzoo_conv, static_argnums=2)(x, w, s))))
        a, b = (statistics.median(times[n]) * 1e3 for n in ('xla', 'cnnzoo'))
        kind = 'depthwise 3x3' if w_shape[2] == 1 else f'1x1 -> {w_shape[3]}'
        print(f'| {"x".join(map(str, x_shape))}, {kind}, {s} | {a:.0f} | {b:.0f} | {a / b:.1f}x | {diff:.2g} |',
              flush=True)


class Before(bench.JaxVariant):
    """The step traced (in __init__) with lax.platform_dependent taking XLA's convolution everywhere."""

    def __init__(self, model_name, variant, **kwargs):
        saved = layers.lax.platform_dependent
        layers.lax.platform_dependent = lambda *args, default, **branches: default(*args)
        try:
            super().__init__(model_name, variant.removesuffix('-before'), **kwargs)
        finally:
            layers.lax.platform_dependent = saved
        self.result.variant = variant


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--steps', type=int, default=8)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--rounds', type=int, default=4)
    p.add_argument('--out', required=True)
    a = p.parse_args()
    print(f'load average at start: {bench._loadavg()}', flush=True)
    layer_table(a.batch_size, rounds=5)
    ib_fields = lambda name: {**cifar_fields(name), **IB}  # noqa: E731
    import cnnzoo.models
    bench.cifar_fields = cnnzoo.models.cifar_fields = ib_fields  # the torch variant imports it when built
    bench.JAX_VARIANTS['jax-fp32-before'] = bench.JAX_VARIANTS['jax-fp32']
    make = bench.make_variant
    bench.make_variant = lambda name, v, **kw: Before(name, v, **kw) if v.endswith('-before') else make(name, v, **kw)
    print('\nresnet20, residual=inverted_bottleneck (expansion 6), training steps:', flush=True)
    bench.compare(['resnet20'], ['jax-fp32-before', 'jax-fp32', 'torch-eager-fp32'], batch_size=a.batch_size,
                  steps=a.steps, warmup=a.warmup, rounds=a.rounds, out=a.out)


if __name__ == '__main__':
    main()
