"""GoogLeNet (Inception v1): Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (Table 1,
Fig. 2b, Fig. 3), in torchvision's layout.

One ``GoogLeNet`` class; the network is data: ``TABLE1`` lists every Inception module with its
branch widths, in Table 1's column order (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj),
and the max-pools between them. The registered ``googlenet`` is ``torchvision.models.GoogLeNet``:

- every convolution is torchvision's ``BasicConv2d``: a bias-free convolution, BatchNorm
  (epsilon 1e-3) and ReLU. BatchNorm is not in the paper (which predates it, and has LRN after the
  first pool and after conv3 instead);
- stem conv1 7x7/2 64, max-pool 3x3/2, conv2 1x1 64, conv3 3x3 192, max-pool 3x3/2; modules 3a, 3b,
  max-pool 3x3/2, 4a-4e, max-pool 2x2/2 (Table 1: 3x3/2; both give 7x7 at 224), 5a, 5b; global
  average pooling, dropout 0.2 (the paper: 0.4) and the linear classifier ``fc``. Every max-pool
  uses PyTorch's ``ceil_mode=True`` (``layers.torch_max_pool``), so map sizes equal torchvision's
  at any input size;
- the "5x5" branch uses a 3x3 kernel, as torchvision does (its known deviation from the paper,
  kept because torchvision's weights were trained that way): ``branch3='3x3'``. ``branch3='5x5'``
  is the paper's 5x5 convolution; ``branch3='double_3x3'`` replaces it by two 3x3 convolutions
  (the factorisation of Ioffe & Szegedy 2015's BN-Inception, and kuangliu/pytorch-cifar's module);
- two auxiliary classifiers (§5, torchvision's ``InceptionAux``) read the outputs of 4a and 4d:
  adaptive average pooling to 4x4, a 1x1 ``BasicConv2d`` to 128 channels, fc1 2048->1024, ReLU,
  dropout 0.7, fc2 1024->classes. In training each is sown into ``AUX_COLLECTION`` with loss
  weight ``aux_weight`` (0.3, §5), the mechanism every model shares (see
  ``cnnzoo.training.steps``); at evaluation they are not run. ``aux_logits=False`` removes them
  and their parameters.

Parameters at 1000 classes: 6,624,904 without the auxiliary heads (torchvision's published count),
13,004,888 with them (the default, as torchvision's ``GoogLeNet()``); tests/test_models.py derives
both from Table 1.

CIFAR (a deviation from the paper, ``cifar_fields``: ``stem='cifar'``), the 32x32 layout of
kuangliu/pytorch-cifar: the stem is one 3x3/1 ``BasicConv2d`` to 192 channels with no early
down-sampling, so 3a-3b run at 32x32, 4a-4e at 16x16 and 5a-5b at 8x8. The auxiliary heads are
kept: after 4a and 4d the map is 16x16, which they pool to 4x4 as on ImageNet (14x14 there), so
they work unchanged. kuangliu's network has no auxiliary heads and uses two 3x3 convolutions in
the third branch; ``aux_logits=False, branch3='double_3x3'`` gives it, up to the convolution
biases it puts before BatchNorm (redundant there), BatchNorm's epsilon (1e-5 there:
``bn_epsilon``) and the pools' alignment (padded by one on both sides there, ceil mode here; the
sizes are the same).

Initialisation as torchvision: convolution and linear weights N(0, 0.01), BatchNorm scale 1 and
offset 0; linear biases start at 0 (torchvision leaves PyTorch's default uniform there).

Names follow torchvision's modules, with a Sequential's index joined by an underscore:
``conv1``..``conv3``, ``inception3a``..``inception5b`` each with ``branch1``, ``branch2_0``,
``branch2_1``, ``branch3_0``, ``branch3_1`` (``branch3_2`` for ``double_3x3``), ``branch4_1``
(``branch4.0`` is the max-pool), every one holding ``conv`` and ``bn``; ``aux1``/``aux2`` with
``conv``, ``fc1``, ``fc2``; and ``fc``. The auxiliary fc1 reads its 4x4x128 input flattened in
(H, W, C) order where torchvision flattens (C, H, W): a converter must permute those rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.layers import Activation, adaptive_avg_pool, conv, get_activation, torch_max_pool
from cnnzoo.models.normalization import BatchNorm, RunningVar
from cnnzoo.models.outputs import AUX_COLLECTION
from cnnzoo.models.registry import check_fields, register_model

# Szegedy et al. 2015, Table 1. For each Inception module, the widths of its branches:
# (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj); the module outputs
# #1x1 + #3x3 + #5x5 + pool proj channels. An int is a max-pool of that window and stride 2.
TABLE1 = (
    ('inception3a', (64, 96, 128, 16, 32, 32)),
    ('inception3b', (128, 128, 192, 32, 96, 64)),
    ('maxpool3', 3),
    ('inception4a', (192, 96, 208, 16, 48, 64)),
    ('inception4b', (160, 112, 224, 24, 64, 64)),
    ('inception4c', (128, 128, 256, 24, 64, 64)),
    ('inception4d', (112, 144, 288, 32, 64, 64)),
    ('inception4e', (256, 160, 320, 32, 128, 128)),
    ('maxpool4', 2),  # torchvision; Table 1 has 3x3/2
    ('inception5a', (256, 160, 320, 32, 128, 128)),
    ('inception5b', (384, 192, 384, 48, 128, 128)),
)
STEMS = ('imagenet', 'cifar')
BRANCH3 = {'3x3': (3,), '5x5': (5,), 'double_3x3': (3, 3)}  # kernels after the #5x5 reduce
weight_init = nn.initializers.normal(0.01)


class BasicConv(nn.Module):
    """torchvision's ``BasicConv2d``: bias-free convolution (padded by kernel // 2), BN, activation."""

    features: int
    kernel: int
    stride: int = 1
    activation: Activation = 'relu'
    bn_momentum: float = 0.9  # flax convention; torch's 0.1
    bn_epsilon: float = 1e-3
    bn_running_var: RunningVar = 'biased'
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = conv(self.features, self.kernel, self.stride, name='conv', dtype=self.dtype,
                 kernel_init=weight_init)(x)
        x = BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                      dtype=self.dtype, param_dtype=jnp.float32, running_var=self.bn_running_var, name='bn')(x)
        return get_activation(self.activation)(x)


class Inception(nn.Module):
    """Four parallel branches concatenated on channels (Fig. 2b): 1x1; 1x1 then 3x3; 1x1 then the
    ``branch3`` kernels; a 3x3/1 max-pool then a 1x1 projection."""

    widths: Sequence[int]  # a row of TABLE1
    branch3: str = '3x3'
    conv_block: Any = BasicConv  # BasicConv with the network's shared fields bound

    @nn.compact
    def __call__(self, x, *, train: bool):
        n1x1, reduce3, n3x3, reduce5, n5x5, pool_proj = self.widths
        b1 = self.conv_block(n1x1, 1, name='branch1')(x, train=train)
        b2 = self.conv_block(reduce3, 1, name='branch2_0')(x, train=train)
        b2 = self.conv_block(n3x3, 3, name='branch2_1')(b2, train=train)
        b3 = self.conv_block(reduce5, 1, name='branch3_0')(x, train=train)
        for i, kernel in enumerate(BRANCH3[self.branch3], start=1):
            b3 = self.conv_block(n5x5, kernel, name=f'branch3_{i}')(b3, train=train)
        b4 = torch_max_pool(x, 3, 1, padding=1)
        b4 = self.conv_block(pool_proj, 1, name='branch4_1')(b4, train=train)
        return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class InceptionAux(nn.Module):
    """An auxiliary classifier (§5, as torchvision's ``InceptionAux``).

    In training it sows ``{'logits': ..., 'weight': loss_weight}`` into ``AUX_COLLECTION`` as
    ``'output'``, so a network's collection reads ``{'aux1': {'output': ...}, ...}``.
    """

    num_classes: int
    loss_weight: float = 0.3
    dropout: float = 0.7
    conv_block: Any = BasicConv
    activation: Activation = 'relu'
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = adaptive_avg_pool(x, 4)
        x = self.conv_block(128, 1, name='conv')(x, train=train).reshape(x.shape[0], -1)
        dense = partial(nn.Dense, kernel_init=weight_init, dtype=self.dtype, param_dtype=jnp.float32)
        x = get_activation(self.activation)(dense(1024, name='fc1')(x))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        logits = dense(self.num_classes, name='fc2')(x).astype(jnp.float32)
        if train:
            self.sow(AUX_COLLECTION, 'output', {'logits': logits, 'weight': self.loss_weight})
        return logits


class GoogLeNet(nn.Module):
    """GoogLeNet and its variants; see the module docstring."""

    layout: Sequence[Any] = TABLE1
    num_classes: int = 1000
    stem: Literal[STEMS] = 'imagenet'
    branch3: Literal[tuple(BRANCH3)] = '3x3'
    aux_logits: bool = True
    aux_after: Sequence[str] = ('inception4a', 'inception4d')  # aux1, aux2
    aux_weight: float = 0.3
    aux_dropout: float = 0.7
    dropout: float = 0.2
    activation: Activation = 'relu'
    bn_momentum: float = 0.9  # flax: running = m * running + (1 - m) * batch; torch's momentum 0.1
    bn_epsilon: float = 1e-3
    bn_running_var: RunningVar = 'biased'  # 'unbiased': PyTorch's running variance (normalization.BatchNorm)
    dtype: Any = jnp.float32  # compute dtype; parameters are always float32

    def check_fields(self):
        modules = [name for name, widths in self.layout if not isinstance(widths, int)]
        missing = [name for name in self.aux_after if name not in modules]
        if self.aux_logits and missing:
            raise ValueError(f'GoogLeNet aux_after names no module {", ".join(missing)}; '
                             f'modules: {", ".join(modules)}')
        get_activation(self.activation)

    @nn.compact
    def __call__(self, x, *, train: bool):
        check_fields(self)
        basic = partial(BasicConv, activation=self.activation, bn_momentum=self.bn_momentum,
                        bn_epsilon=self.bn_epsilon, bn_running_var=self.bn_running_var, dtype=self.dtype)
        x = x.astype(self.dtype)
        if self.stem == 'imagenet':
            x = basic(64, 7, 2, name='conv1')(x, train=train)
            x = torch_max_pool(x, 3, 2, ceil_mode=True)
            x = basic(64, 1, name='conv2')(x, train=train)
            x = basic(192, 3, name='conv3')(x, train=train)
            x = torch_max_pool(x, 3, 2, ceil_mode=True)
        else:
            x = basic(192, 3, name='conv1')(x, train=train)

        for name, widths in self.layout:
            if isinstance(widths, int):
                x = torch_max_pool(x, widths, 2, ceil_mode=True)
                continue
            x = Inception(widths, self.branch3, basic, name=name)(x, train=train)
            # The heads are built at initialisation too, which runs in eval mode, so that a model
            # initialised once has the parameters training needs.
            if self.aux_logits and name in self.aux_after and (train or self.is_initializing()):
                InceptionAux(self.num_classes, self.aux_weight, self.aux_dropout, basic, self.activation,
                             self.dtype, name=f'aux{list(self.aux_after).index(name) + 1}')(x, train=train)

        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, kernel_init=weight_init, dtype=self.dtype, param_dtype=jnp.float32,
                     name='fc')(x)
        return x.astype(jnp.float32)


googlenet = partial(GoogLeNet, layout=TABLE1)
register_model('googlenet', googlenet, cifar_fields={'stem': 'cifar'})
