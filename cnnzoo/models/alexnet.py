"""AlexNet: Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012 (§3, Fig. 2), and torchvision's single-tower version of it.

One ``AlexNet`` class. The network is five convolutions, max-pools after the first, second and
fifth, and a classifier of two hidden fully connected layers with dropout; what varies is data:

- ``alexnet`` is ``torchvision.models.alexnet`` exactly (its widths follow Krizhevsky 2014, "One
  weird trick for parallelizing convolutional neural networks"): convolutions 64 11x11/4 pad 2,
  192 5x5 pad 2, 384, 256, 256 3x3 pad 1, max-pools 3x3/2, adaptive average pooling to 6x6, then
  Dropout(0.5)-fc1 4096-ReLU-Dropout(0.5)-fc2 4096-ReLU-head. 61,100,840 parameters at 1000
  classes, torchvision's count.
- ``alexnet_2012`` is the paper's layout: widths 96, 256, 384, 384, 256; local response
  normalisation (k=2, n=5, alpha=1e-4, beta=0.75, §3.3) after the ReLUs of conv1 and conv2, before
  their pools; the overlapping 3x3/2 pools of §3.4; dropout 0.5 on the *outputs* of the two hidden
  layers (§4.2; ``dropout_at='fc_outputs'``, where torchvision drops their inputs). ``groups=2`` (the
  default of this entry) is the paper's two-GPU connectivity (§3.2, Fig. 2): conv2, conv4 and conv5
  see only the half of the previous layer's maps on their own GPU, while conv3 and the fully
  connected layers see all of them. It is on by default because it is part of the published network
  (and of its "60 million parameters"); ``groups=1`` gives the single-tower network of the same
  widths (62,378,344 parameters).

Input size. The paper says 224x224 inputs, but an 11x11/4 convolution without padding maps 224 to
54.25, not the 55x55x96 of Fig. 2; 227 pixels without padding gives 55 (Caffe's choice). Here conv1
is padded by 2 as in torchvision, so 224-pixel inputs give exactly the paper's maps (55, 27, 13 and
6x6x256 = 9216 inputs to fc1). A 227-pixel image also works (56, 27, 13, 6), and the adaptive
pooling before fc1 makes any size from 63 pixels up valid.

CIFAR (a deviation from the paper, ``cifar_fields``: ``stem='cifar', head='cifar'``): conv1 becomes
3x3/1 with padding 1 (same width), so a 32x32 image is not shrunk 4x before the first pool and the
three 3x3/2 pools leave 15, 7 and 3 pixels; ``head='cifar'`` pools adaptively to 3x3 instead of
6x6 (at 32x32 the map is already 3x3, so this is the identity, where 6x6 would copy every value
four times and quadruple fc1 for no gain). The classifier keeps its two hidden layers of
``hidden`` units and its dropout. Dropout draws from the ``'dropout'`` rng, which the train step
derives from ``(seed, step)``.

Initialisation: PyTorch's defaults, which torchvision's AlexNet keeps: every weight
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and every bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)). (The
paper's N(0, 0.01) weights with biases of 1 in conv2, conv4, conv5 and the hidden layers are not
reproduced.)

Parameter names are torchvision's modules one to one: ``conv1``..``conv5`` are ``features.0``,
``.3``, ``.6``, ``.8``, ``.10``; ``fc1``, ``fc2``, ``head`` are ``classifier.1``, ``.4``, ``.6``.
fc1's input is flattened in (H, W, C) order where torchvision flattens (C, H, W): a converter must
permute fc1's rows.
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
    get_activation,
    torch_default_bias_init,
    torch_default_kernel_init,
    torch_max_pool,
)
from cnnzoo.models.normalization import LocalResponseNorm
from cnnzoo.models.registry import check_fields, register_model

# Convolution widths, conv1 to conv5.
TORCHVISION_WIDTHS = (64, 192, 384, 256, 256)  # torchvision.models.alexnet
PAPER_WIDTHS = (96, 256, 384, 384, 256)  # Krizhevsky et al. 2012, §3.5 and Fig. 2 (both GPUs together)

# (kernel, stride, padding) of conv1 to conv5 on ImageNet; the CIFAR stem replaces conv1's.
KERNELS = ((11, 4, 2), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1))
CIFAR_CONV1 = (3, 1, 1)
POOL_AFTER = (1, 2, 5)  # a 3x3/2 max-pool follows these convolutions (§3.4)
LRN_AFTER = (1, 2)  # with ``lrn=True`` (§3.3)
GROUPED = (2, 4, 5)  # with ``groups=2``: the convolutions that see only their own GPU's maps (§3.5)
POOLED_SIZE = {'imagenet': 6, 'cifar': 3}  # the map fc1 reads, per head
STEMS = ('imagenet', 'cifar')
DROPOUT_SITES = ('fc_inputs', 'fc_outputs')


class AlexNet(nn.Module):
    """AlexNet and its variants; see the module docstring."""

    widths: Sequence[int] = TORCHVISION_WIDTHS
    num_classes: int = 1000
    stem: Literal[STEMS] = 'imagenet'
    head: Literal[tuple(POOLED_SIZE)] = 'imagenet'
    lrn: bool = False
    groups: int = 1  # feature groups of conv2, conv4, conv5 (2 = the paper's two GPUs)
    hidden: int = 4096  # width of fc1 and fc2
    dropout: float = 0.5
    dropout_at: Literal[DROPOUT_SITES] = 'fc_inputs'  # torchvision; 'fc_outputs' is the paper's placement
    activation: Activation = 'relu'
    dtype: Any = jnp.float32  # compute dtype; parameters are always float32

    def check_fields(self):
        if len(self.widths) != len(KERNELS):
            raise ValueError(f'AlexNet needs {len(KERNELS)} convolution widths, got {tuple(self.widths)}')
        get_activation(self.activation)

    @nn.compact
    def __call__(self, x, *, train: bool):
        check_fields(self)
        act = get_activation(self.activation)
        x = x.astype(self.dtype)
        for index, (width, (kernel, stride, pad)) in enumerate(zip(self.widths, KERNELS), start=1):
            if index == 1 and self.stem == 'cifar':
                kernel, stride, pad = CIFAR_CONV1
            groups = self.groups if index in GROUPED else 1
            fan_in = kernel * kernel * x.shape[-1] // groups
            x = nn.Conv(width, (kernel, kernel), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                        feature_group_count=groups, kernel_init=torch_default_kernel_init,
                        bias_init=torch_default_bias_init(fan_in), dtype=self.dtype,
                        param_dtype=jnp.float32, name=f'conv{index}',
                        conv_general_dilated=conv_general_dilated)(x)
            x = act(x)
            if self.lrn and index in LRN_AFTER:
                x = LocalResponseNorm(name=f'lrn{index}')(x)
            if index in POOL_AFTER:
                x = torch_max_pool(x, 3, 2)

        x = adaptive_avg_pool(x, POOLED_SIZE[self.head]).reshape(x.shape[0], -1)
        drop = partial(nn.Dropout, self.dropout, deterministic=not train)
        for name in ('fc1', 'fc2'):
            if self.dropout_at == 'fc_inputs':
                x = drop()(x)
            x = act(self.dense(self.hidden, x.shape[-1], name)(x))
            if self.dropout_at == 'fc_outputs':
                x = drop()(x)
        return self.dense(self.num_classes, x.shape[-1], 'head')(x).astype(jnp.float32)

    def dense(self, features: int, fan_in: int, name: str) -> nn.Dense:
        return nn.Dense(features, kernel_init=torch_default_kernel_init, bias_init=torch_default_bias_init(fan_in),
                        dtype=self.dtype, param_dtype=jnp.float32, name=name)


alexnet = partial(AlexNet, widths=TORCHVISION_WIDTHS)
alexnet_2012 = partial(AlexNet, widths=PAPER_WIDTHS, lrn=True, groups=2, dropout_at='fc_outputs')

# Three 3x3/2 pools after an 11x11/4 convolution need 63 pixels: 63 -> 15 -> 7 -> 3 -> 1. After the
# CIFAR stem, 32 pixels leave 15, 7 and 3 (and 15 would be the least).
for _name, _factory in (('alexnet', alexnet), ('alexnet_2012', alexnet_2012)):
    register_model(_name, _factory, min_input_size=63, cifar_fields={'stem': 'cifar', 'head': 'cifar'},
                   cifar_min_input_size=32)
