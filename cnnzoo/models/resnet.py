"""Residual networks and their plain counterparts: one ``ResNet`` class, ablations as fields.

References
- He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
  §4.2 (CIFAR-10): a 3x3 convolution with 16 filters, three stages of n basic blocks at 16, 32
  and 64 filters (6n+2 layers), option-A shortcuts (identity; when the shape changes, stride-2
  subsampling and zero-padded channels, so no parameters), global average pooling and a linear
  layer. Table 6 lists ResNet-20/32/44/56/110/1202 with 0.27M/0.46M/0.66M/0.85M/1.7M/19.4M
  parameters; the plain nets of Fig. 6 are the same layers without shortcuts.
  Table 1 (ImageNet): ResNet-18/34 with basic blocks, ResNet-50/101/152 with bottlenecks.
- torchvision.models.resnet, whose layout the ImageNet models follow exactly, so their parameter
  counts equal torchvision's: option-B shortcuts (1x1 convolution + BN, only where the shape
  changes; identity elsewhere) and the stride of a bottleneck on its 3x3 convolution rather than
  on the first 1x1 ("ResNet v1.5"; the paper strides the 1x1).
- He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016 (Fig. 4e):
  ``residual='preact'``, i.e. BN-act-conv twice plus the shortcut, with no activation after the
  addition and one BN-act before pooling (``final_bn``). With the CIFAR stem the stem is a bare
  convolution, since the first block normalises its own input; a projection shortcut reads the
  pre-activated input and has no BN of its own, as in fb.resnet.torch's preresnet.lua. Fig. 4c
  of the same paper is ``residual='relu_before_add'``.
- Sandler, Howard, Zhu, Zhmoginov, Chen, "MobileNetV2: Inverted Residuals and Linear
  Bottlenecks", CVPR 2018 (Fig. 3b, Table 1): ``residual='inverted_bottleneck'`` replaces the
  body of every block with an inverted residual: a 1x1 expansion convolution to
  ``expansion_factor`` (the paper's t, 6 by default) times the block's *input* channels, as in
  Table 1 (k -> tk), + BN + act; a depthwise 3x3 convolution (one group per channel) carrying
  the block's stride, as in Table 1, + BN + act; a 1x1 linear projection to the block's output
  width + BN with no activation (the "linear bottleneck"); and s(x) added between the narrow ends
  with no activation after the addition. The block keeps its input and output widths (a basic
  block's ``features``, a bottleneck's ``4 * features``), so the rest of the network is unchanged;
  the head pools the last block's linear output.
  Deviations: the activation is the ``activation`` field (ReLU by default), not the paper's ReLU6;
  the expansion convolution is kept for t = 1 (MobileNetV2 drops it in its first block), so the
  parameter tree does not depend on t; and where a block changes shape MobileNetV2 has no
  shortcut at all, while here the ``shortcut`` field decides (option A zero-pads, option B
  projects from the block's input with 1x1 conv + BN, ``'none'`` adds nothing). Blocks that keep
  the shape have the identity shortcut, as in the paper (none with ``shortcut='none'``).

Deviation: ``stem='cifar'`` on an ImageNet layout (``create_model('resnet18', num_classes=10,
stem='cifar')``) replaces the 7x7/2 convolution and 3x3/2 max-pool with one 3x3/1 convolution,
so 32x32 images are not downsampled 4x before the first stage. This is the common "ResNet-18 on
CIFAR-10", not a network from the paper.

Ablations, all fields of ``ResNet``:
- ``shortcut``: ``'A'``, ``'B'``, or ``'none'`` (a plain network: the same layers, no addition).
- ``residual``: ``'standard'`` act(F(x) + s(x)); ``'relu_before_add'`` act(F(x)) + s(x);
  ``'square'`` act(F(x) + s(x)**2); ``'preact'`` and ``'inverted_bottleneck'`` (F(x) + s(x),
  F linear at its end) as above.
- ``expansion_factor``: t of the inverted bottleneck (read only with that residual form).
- ``activation``: a name in ``layers.ACTIVATIONS``.
- ``zero_init_last_bn``: the scale of the last BN of every residual branch starts at 0
  (Goyal et al. 2017, "Accurate, Large Minibatch SGD"), so a standard block starts as
  act(s(x)). In the preact form that BN is the one before the last convolution, which zeroes
  the branch for activations with act(0) = 0; in the inverted bottleneck it is ``project_bn``,
  so the block starts as s(x).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.layers import Activation, conv, conv_general_dilated, conv_init, get_activation
from cnnzoo.models.normalization import BatchNorm, RunningVar
from cnnzoo.models.registry import FieldError, check_fields, register_model

RESIDUAL_FORMS = ('standard', 'relu_before_add', 'square', 'preact', 'inverted_bottleneck')
SHORTCUTS = ('A', 'B', 'none')
STEMS = ('cifar', 'imagenet')


def batch_norm(name: str, *, train: bool, momentum: float, epsilon: float, dtype,
               zero_scale: bool = False, running_var: str = 'biased') -> BatchNorm:
    """BatchNorm with float32 parameters; scale starts at 1 (or 0 with ``zero_scale``), bias at 0."""
    return BatchNorm(use_running_average=not train, momentum=momentum, epsilon=epsilon,
                     dtype=dtype, param_dtype=jnp.float32, name=name, running_var=running_var,
                     scale_init=nn.initializers.zeros if zero_scale else nn.initializers.ones)


class ResidualBlock(nn.Module):
    """What basic and bottleneck blocks share: their fields, BN, the shortcut and the merge, and
    the inverted bottleneck body that replaces either's with ``residual='inverted_bottleneck'``.

    ``features`` is the width of the block's convolutions; the block outputs
    ``features * expansion`` channels (torchvision's ``planes``). ``expansion_factor`` is the
    inverted bottleneck's t: its hidden width is t times the block's input channels.
    """

    features: int
    stride: int = 1
    shortcut: Literal[SHORTCUTS] = 'A'
    residual: Literal[RESIDUAL_FORMS] = 'standard'
    activation: Activation = 'relu'
    zero_init_last_bn: bool = False
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    bn_running_var: RunningVar = 'biased'
    dtype: Any = jnp.float32
    expansion: int = 1
    expansion_factor: int = 6

    @property
    def out_features(self) -> int:
        return self.features * self.expansion

    def bn(self, name: str, train: bool, *, last: bool = False) -> BatchNorm:
        return batch_norm(name, train=train, momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                          dtype=self.dtype, zero_scale=last and self.zero_init_last_bn,
                          running_var=self.bn_running_var)

    def conv(self, features: int, kernel: int, stride: int = 1, *, name: str) -> nn.Conv:
        return conv(features, kernel, stride, name=name, dtype=self.dtype)

    def inverted_bottleneck(self, x, train: bool):
        """MobileNetV2's inverted residual (see the module docstring): expand, depthwise, project."""
        act = get_activation(self.activation)
        hidden = self.expansion_factor * x.shape[-1]
        y = act(self.bn('expand_bn', train)(self.conv(hidden, 1, name='expand_conv')(x)))
        # One group per channel: a (3, 3, 1, hidden) kernel. The explicit (1, 1) padding is
        # PyTorch's, as in layers.conv.
        y = nn.Conv(hidden, (3, 3), strides=(self.stride, self.stride), padding=((1, 1), (1, 1)),
                    feature_group_count=hidden, use_bias=False, kernel_init=conv_init, dtype=self.dtype,
                    param_dtype=jnp.float32, name='depthwise_conv',
                    conv_general_dilated=conv_general_dilated)(y)
        y = act(self.bn('depthwise_bn', train)(y))
        y = self.bn('project_bn', train, last=True)(self.conv(self.out_features, 1, name='project_conv')(y))
        return self.merge(y, self.shortcut_path(x, x, train))

    def shortcut_path(self, x, pre, train: bool):
        """s(x), or None for a plain block; ``pre`` is the pre-activated input (preact only)."""
        if self.shortcut == 'none':
            return None
        if x.shape[-1] == self.out_features and self.stride == 1:
            return x
        if self.shortcut == 'A':
            x = x[:, ::self.stride, ::self.stride, :]
            extra = self.out_features - x.shape[-1]
            return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
        if self.residual == 'preact':
            return self.conv(self.out_features, 1, self.stride, name='proj_conv')(pre)
        y = self.conv(self.out_features, 1, self.stride, name='proj_conv')(x)
        return self.bn('proj_bn', train)(y)

    def merge(self, branch, short):
        act = get_activation(self.activation)
        if self.residual in ('preact', 'inverted_bottleneck'):
            return branch if short is None else branch + short
        if short is None:
            return act(branch)
        if self.residual == 'standard':
            return act(branch + short)
        if self.residual == 'relu_before_add':
            return act(branch) + short
        return act(branch + short * short)  # 'square'


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions (He et al. 2016, Fig. 5 left); the first carries the stride."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        if self.residual == 'inverted_bottleneck':
            return self.inverted_bottleneck(x, train)
        act = get_activation(self.activation)
        if self.residual == 'preact':
            pre = act(self.bn('bn1', train)(x))
            y = self.conv(self.features, 3, self.stride, name='conv1')(pre)
            y = act(self.bn('bn2', train, last=True)(y))
            y = self.conv(self.features, 3, name='conv2')(y)
            return self.merge(y, self.shortcut_path(x, pre, train))
        y = self.conv(self.features, 3, self.stride, name='conv1')(x)
        y = act(self.bn('bn1', train)(y))
        y = self.conv(self.features, 3, name='conv2')(y)
        y = self.bn('bn2', train, last=True)(y)
        return self.merge(y, self.shortcut_path(x, x, train))


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision), 1x1 expand (He et al. 2016, Fig. 5 right)."""

    expansion: int = 4

    @nn.compact
    def __call__(self, x, *, train: bool):
        if self.residual == 'inverted_bottleneck':
            return self.inverted_bottleneck(x, train)
        act = get_activation(self.activation)
        if self.residual == 'preact':
            pre = act(self.bn('bn1', train)(x))
            y = self.conv(self.features, 1, name='conv1')(pre)
            y = act(self.bn('bn2', train)(y))
            y = self.conv(self.features, 3, self.stride, name='conv2')(y)
            y = act(self.bn('bn3', train, last=True)(y))
            y = self.conv(self.out_features, 1, name='conv3')(y)
            return self.merge(y, self.shortcut_path(x, pre, train))
        y = act(self.bn('bn1', train)(self.conv(self.features, 1, name='conv1')(x)))
        y = act(self.bn('bn2', train)(self.conv(self.features, 3, self.stride, name='conv2')(y)))
        y = self.bn('bn3', train, last=True)(self.conv(self.out_features, 1, name='conv3')(y))
        return self.merge(y, self.shortcut_path(x, x, train))


class ResNet(nn.Module):
    """A residual (or, with ``shortcut='none'``, plain) network; see the module docstring.

    ``stage_widths[i]`` is the convolution width of stage ``i + 1`` (a bottleneck stage outputs
    4x that); the stem outputs ``stage_widths[0]`` channels. Every stage after the first halves
    the resolution in its first block.
    """

    stage_sizes: Sequence[int]
    block: Any = BasicBlock  # a ResidualBlock subclass, or a partial of one
    stage_widths: Sequence[int] = (16, 32, 64)
    num_classes: int = 10
    stem: Literal[STEMS] = 'cifar'
    shortcut: Literal[SHORTCUTS] = 'A'
    residual: Literal[RESIDUAL_FORMS] = 'standard'
    expansion_factor: int = 6  # t of residual='inverted_bottleneck' (MobileNetV2's default)
    activation: Activation = 'relu'
    zero_init_last_bn: bool = False
    bn_momentum: float = 0.9  # flax: running = m * running + (1 - m) * batch; torch's momentum 0.1
    bn_epsilon: float = 1e-5
    bn_running_var: RunningVar = 'biased'  # 'unbiased': PyTorch's running variance (normalization.BatchNorm)
    dtype: Any = jnp.float32  # compute dtype; parameters are always float32

    def check_fields(self):
        if len(self.stage_sizes) != len(self.stage_widths):
            raise ValueError(f'ResNet needs one width per stage: stage_sizes={tuple(self.stage_sizes)}, '
                             f'stage_widths={tuple(self.stage_widths)}')
        if self.expansion_factor < 1:
            raise FieldError(f'ResNet expansion_factor={self.expansion_factor!r}: expected an integer >= 1',
                             field='expansion_factor')
        get_activation(self.activation)

    @nn.compact
    def __call__(self, x, *, train: bool):
        check_fields(self)
        act = get_activation(self.activation)
        bn = partial(batch_norm, train=train, momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                     dtype=self.dtype, running_var=self.bn_running_var)
        preact = self.residual == 'preact'

        x = x.astype(self.dtype)
        if self.stem == 'imagenet':
            x = conv(self.stage_widths[0], 7, 2, name='stem_conv', dtype=self.dtype)(x)
            x = act(bn('stem_bn')(x))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        else:
            x = conv(self.stage_widths[0], 3, 1, name='stem_conv', dtype=self.dtype)(x)
            if not preact:
                x = act(bn('stem_bn')(x))

        for i, (size, width) in enumerate(zip(self.stage_sizes, self.stage_widths, strict=True)):
            for j in range(size):
                x = self.block(
                    features=width, stride=2 if (i > 0 and j == 0) else 1, shortcut=self.shortcut,
                    residual=self.residual, expansion_factor=self.expansion_factor, activation=self.activation,
                    zero_init_last_bn=self.zero_init_last_bn, bn_momentum=self.bn_momentum,
                    bn_epsilon=self.bn_epsilon, bn_running_var=self.bn_running_var, dtype=self.dtype,
                    name=f'stage{i + 1}_block{j + 1}',
                )(x, train=train)
        if preact:
            x = act(bn('final_bn')(x))
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=jnp.float32, name='head')(x)
        return x.astype(jnp.float32)


# He et al. 2016 §4.2: 6n+2 layers, n basic blocks per stage at 16/32/64 filters, option A.
_cifar = partial(ResNet, block=BasicBlock, stage_widths=(16, 32, 64), stem='cifar', shortcut='A')
resnet20 = partial(_cifar, stage_sizes=(3, 3, 3))
resnet32 = partial(_cifar, stage_sizes=(5, 5, 5))
resnet44 = partial(_cifar, stage_sizes=(7, 7, 7))
resnet56 = partial(_cifar, stage_sizes=(9, 9, 9))
resnet110 = partial(_cifar, stage_sizes=(18, 18, 18))
resnet1202 = partial(_cifar, stage_sizes=(200, 200, 200))
# He et al. 2016 Fig. 6 (left) trains plain-20/32/44/56; plain110 extends the family to match resnet110.
plain20 = partial(resnet20, shortcut='none')
plain32 = partial(resnet32, shortcut='none')
plain44 = partial(resnet44, shortcut='none')
plain56 = partial(resnet56, shortcut='none')
plain110 = partial(resnet110, shortcut='none')

# He et al. 2016 Table 1, in torchvision's layout: ImageNet stem, option B.
_imagenet = partial(ResNet, stage_widths=(64, 128, 256, 512), stem='imagenet', shortcut='B')
resnet18 = partial(_imagenet, block=BasicBlock, stage_sizes=(2, 2, 2, 2))
resnet34 = partial(_imagenet, block=BasicBlock, stage_sizes=(3, 4, 6, 3))
resnet50 = partial(_imagenet, block=Bottleneck, stage_sizes=(3, 4, 6, 3))
resnet101 = partial(_imagenet, block=Bottleneck, stage_sizes=(3, 4, 23, 3))
resnet152 = partial(_imagenet, block=Bottleneck, stage_sizes=(3, 8, 36, 3))
# He et al. 2016 Table 2: the plain 18- and 34-layer ImageNet nets.
plain18 = partial(resnet18, shortcut='none')
plain34 = partial(resnet34, shortcut='none')

for _name in ('resnet20', 'resnet32', 'resnet44', 'resnet56', 'resnet110', 'resnet1202',
              'plain20', 'plain32', 'plain44', 'plain56', 'plain110',
              'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'plain18', 'plain34'):
    _factory = globals()[_name]
    _cifar_stem = {'stem': 'cifar'} if _factory.keywords.get('stem') == 'imagenet' else None
    register_model(_name, _factory, cifar_fields=_cifar_stem)
