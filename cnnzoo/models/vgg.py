"""VGG networks: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015, Table 1 (configurations A, A-LRN, B, C, D, E).

One ``VGG`` class; a configuration is data: a tuple whose entries are a conv width (3x3, stride 1,
padding 1), ``(width, 1)`` for configuration C's 1x1 convolutions, or ``'M'`` for a 2x2/2 max-pool.

- ``head='imagenet'`` is torchvision's ``VGG``: adaptive average pooling to 7x7, then
  4096-ReLU-Dropout(0.5)-4096-ReLU-Dropout(0.5)-classes; parameter counts equal torchvision's
  (vgg16 = 138,357,544 at 1000 classes). Convolutions keep their bias, also before BatchNorm, as
  in torchvision's ``vgg*_bn``.
- ``head='cifar'`` is the usual 32x32 adaptation (a deviation from the paper): after five pools the
  map is 1x1x512; it is flattened into a single linear layer (kuangliu/pytorch-cifar's VGG).
- ``batch_norm=True`` (the ``_bn`` names) adds BatchNorm after every convolution (not in the paper,
  which predates it; torchvision's ``vgg*_bn``).
- ``lrn=True`` (``vgg11_lrn``, configuration A-LRN) puts local response normalisation after the
  first convolution's ReLU, with the paper's constants (Krizhevsky et al. 2012).

Initialisation as torchvision: convolutions He-normal (fan_out) with zero bias, linear layers
N(0, 0.01) with zero bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.layers import (
    Activation,
    adaptive_avg_pool,
    conv_general_dilated,
    conv_init,
    get_activation,
)
from cnnzoo.models.normalization import BatchNorm, LocalResponseNorm, RunningVar
from cnnzoo.models.registry import check_fields, register_model

# Simonyan & Zisserman 2015, Table 1. (w, 1) is a 1x1 convolution of width w (configuration C).
CONFIGS = {
    'A': (64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'),
    'B': (64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'),
    'C': (64, 64, 'M', 128, 128, 'M', 256, 256, (256, 1), 'M', 512, 512, (512, 1), 'M',
          512, 512, (512, 1), 'M'),
    'D': (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'),
    'E': (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M',
          512, 512, 512, 512, 'M'),
}
HEADS = ('imagenet', 'cifar')
linear_init = nn.initializers.normal(0.01)


class VGG(nn.Module):
    config: Sequence[Any]
    num_classes: int = 1000
    head: Literal[HEADS] = 'imagenet'
    batch_norm: bool = False
    lrn: bool = False
    activation: Activation = 'relu'
    dropout: float = 0.5
    hidden: int = 4096  # width of the ImageNet head's two hidden layers
    bn_momentum: float = 0.9  # flax convention; torch's 0.1
    bn_epsilon: float = 1e-5
    bn_running_var: RunningVar = 'biased'  # 'unbiased': PyTorch's running variance (normalization.BatchNorm)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        check_fields(self)
        act = get_activation(self.activation)
        x = x.astype(self.dtype)
        index = 0
        for entry in self.config:
            if entry == 'M':
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
                continue
            width, kernel = entry if isinstance(entry, tuple) else (entry, 3)
            index += 1
            pad = kernel // 2
            x = nn.Conv(width, (kernel, kernel), padding=((pad, pad), (pad, pad)), kernel_init=conv_init,
                        dtype=self.dtype, param_dtype=jnp.float32, name=f'conv{index}',
                        conv_general_dilated=conv_general_dilated)(x)
            if self.batch_norm:
                x = BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                              epsilon=self.bn_epsilon, dtype=self.dtype, param_dtype=jnp.float32,
                              running_var=self.bn_running_var, name=f'bn{index}')(x)
            x = act(x)
            if self.lrn and index == 1:
                x = LocalResponseNorm(name='lrn')(x)

        dense = partial(nn.Dense, kernel_init=linear_init, dtype=self.dtype, param_dtype=jnp.float32)
        if self.head == 'cifar':
            x = x.reshape(x.shape[0], -1)
        else:
            x = adaptive_avg_pool(x, 7).reshape(x.shape[0], -1)
            for i in (1, 2):
                x = dense(self.hidden, name=f'fc{i}')(x)
                x = nn.Dropout(self.dropout, deterministic=not train)(act(x))
        return dense(self.num_classes, name='head')(x).astype(jnp.float32)


_NAMES = {'A': 'vgg11', 'B': 'vgg13', 'C': 'vgg16_1x1', 'D': 'vgg16', 'E': 'vgg19'}
for _letter, _name in _NAMES.items():
    register_model(_name, partial(VGG, config=CONFIGS[_letter]), cifar_fields={'head': 'cifar'})
    register_model(f'{_name}_bn', partial(VGG, config=CONFIGS[_letter], batch_norm=True),
                   cifar_fields={'head': 'cifar'})
register_model('vgg11_lrn', partial(VGG, config=CONFIGS['A'], lrn=True), cifar_fields={'head': 'cifar'})
register_model('vgg11_lrn_bn', partial(VGG, config=CONFIGS['A'], lrn=True, batch_norm=True),
               cifar_fields={'head': 'cifar'})
