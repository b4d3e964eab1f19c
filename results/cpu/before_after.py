"""Before/after of this issue's two model-level changes, side by side in one process.

    python results/cpu/before_after.py --models resnet20 --steps 20 --out results/cpu/before_after_resnet20

"-before" variants build the JAX step as cnnzoo did before issue 4: ReLU as ``jax.nn.relu``
(``max(x, 0)``) and every convolution through ``lax.conv_general_dilated`` (no matrix-product path
for kernels larger than the image); the plain variants use cnnzoo as it is. PyTorch eager float32
runs beside them. Everything else, the interleaved timing included, is cnnzoo.bench.speed's.
Kept with the results it produced; not a tool.
"""
import argparse
import sys

import jax
from jax import lax

import cnnzoo.bench.speed as bench
from cnnzoo.models import layers, vgg


class Before(bench.JaxVariant):
    def __init__(self, model_name, variant, **kwargs):
        saved = layers.ACTIVATIONS['relu'], layers.conv_general_dilated, vgg.conv_general_dilated
        # Read when the steps are traced, which happens here (compile and warm-up).
        layers.ACTIVATIONS['relu'] = jax.nn.relu
        layers.conv_general_dilated = vgg.conv_general_dilated = lax.conv_general_dilated
        try:
            super().__init__(model_name, variant.removesuffix('-before'), **kwargs)
        finally:
            layers.ACTIVATIONS['relu'], layers.conv_general_dilated, vgg.conv_general_dilated = saved
        self.result.variant = variant


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--models', default='resnet20')
    p.add_argument('--dtypes', default='fp32', help='comma list of fp32, bf16')
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--out', required=True)
    a = p.parse_args()
    dtypes = a.dtypes.split(',')
    variants = [v for d in dtypes for v in (f'jax-{d}-before', f'jax-{d}')] + ['torch-eager-fp32']
    bench.JAX_VARIANTS.update({f'jax-{d}-before': bench.JAX_VARIANTS[f'jax-{d}'] for d in dtypes})
    make = bench.make_variant
    bench.make_variant = lambda name, v, **kw: Before(name, v, **kw) if v.endswith('-before') else make(name, v, **kw)
    bench.compare(a.models.split(','), variants, batch_size=a.batch_size, steps=a.steps, warmup=a.warmup,
                  rounds=a.rounds, out=a.out)


if __name__ == '__main__':
    sys.exit(main())
