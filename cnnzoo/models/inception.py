"""Inception v3: Szegedy, Vanhoucke, Ioffe, Shlens, Wojna, "Rethinking the Inception Architecture
for Computer Vision", CVPR 2016 (Table 1, Figs. 5-7 and 10; the auxiliary classifier of Fig. 8),
in the layout of ``torchvision.models.inception_v3``, whose pretrained weights were ported from
TensorFlow-Slim's ``inception_v3``.

One ``InceptionV3`` class; the network is data. A convolution is ``Conv(width, kernel, stride,
padding)``, exactly the arguments of torchvision's ``BasicConv2d`` (a bias-free convolution,
BatchNorm with epsilon 0.001, ReLU); a module is a tuple of ``Branch``es whose outputs are
concatenated on the channel axis in order; ``MIXED`` lists the eleven modules with their
torchvision names and widths (InceptionA-E, the paper's Figs. 5, 10 (grid reduction), 6, 10, 7;
torchvision follows TF-Slim where that departs from the figures, e.g. InceptionA's second branch
is 1x1 -> 5x5 where Fig. 5 has 1x1 -> 3x3; the paper gives no branch widths).
Paddings are explicit as in torchvision: stride-1 convolutions inside the modules keep the map
size, every stride-2 convolution and max-pool (3x3/2) is unpadded, and the stem's 3x3 convolutions
Conv2d_2a and Conv2d_4a are unpadded too. The 3x3/1 average pools before the pool branches' 1x1
convolutions are padded by 1 and, like ``F.avg_pool2d``, divide by 9 also at the border.

Parameter names are torchvision's module paths (``Conv2d_1a_3x3/conv``, ``Mixed_5b/branch5x5_1/bn``,
``AuxLogits/conv1``, ``fc``), so a converter from a torchvision ``state_dict`` only renames the
leaves (weight -> kernel transposed OIHW -> HWIO, or scale for BN; running_mean/var -> batch_stats
mean/var) and transposes the two linear layers. Concatenation order equals torchvision's.
27,161,264 parameters at 1000 classes (torchvision's published count); 23,834,568 without the
auxiliary head, whose 3,326,696 are conv0 (768*128 + 2*128), conv1 (5*5*128*768 + 2*768) and fc
(768*1000 + 1000).

Auxiliary head (``AuxLogits``, on the 17x17 map after Mixed_6e): 5x5/3 average pool, 1x1
convolution to 128, 5x5 convolution to 768 (unpadded: it covers the whole 5x5 map), global average
pool, linear layer. In train mode its logits are sown into the ``'aux_outputs'`` collection with
``aux_weight`` (see cnnzoo.training.steps); at evaluation it is not run. Its parameters are created
by ``init`` (which runs in eval mode), so a model initialised once can train. ``aux_weight`` = 0.4
as in TF-Slim's ``train_image_classifier.py`` (``weights=0.4, scope='aux_loss'``), the recipe the
torchvision weights come from; torchvision's own reference script does not train this head, and
PyTorch's fine-tuning tutorial also uses 0.4. The paper gives no weight. ``aux_logits=False``
removes the head and exactly its parameters.

Input size. 299x299 (Table 1). The unpadded layers make small inputs fail; every window is checked
and a too-small map is a one-line ValueError (without the check XLA would silently produce empty
maps and NaN logits):
- without the auxiliary head (and in eval mode), the smallest input is 75x75: 75 -> 37 -> 35 ->
  17 -> 15 -> 7 (Mixed_5) -> 3 (Mixed_6) -> 1 (Mixed_7); 74 leaves 2x2 for Mixed_7a's 3x3 window.
- with the auxiliary head (``init``, and training), 299x299: the head's unpadded 5x5 convolution
  needs the pooled map to be 5x5, so the Mixed_6 map must be 17x17; 298 gives 16 -> 4. This is
  torchvision's behaviour too (its head fails below 299 in train mode), hence ``min_input_size=299``
  in the registry. Eval-mode ``apply`` at 75 works with such a model's variables.

CIFAR (a deviation from the paper, ``cifar_fields``: ``stem='cifar', aux_pool=(3, 3)``): the stem
keeps the resolution, with stride 1 in Conv2d_1a, padding 1 in the three 3x3 convolutions and no
max-pools, so a 32x32 image reaches Mixed_5 at 32x32 (35x35 at 299 in the original), Mixed_6 at
15x15 (17x17) and Mixed_7 at 7x7 (8x8). The auxiliary head pools 3x3/3 instead of 5x5/3, which
turns 15x15 into 5x5 just as the original turns 17x17 into 5x5; its 5x5 convolution then covers
the whole map as designed. Parameter shapes are unchanged (only num_classes differs), so
torchvision weights load into the CIFAR variant too. Smallest inputs of this variant: 31 with the
auxiliary head, 7 without. Its forward pass at 32x32 costs 6.9 GFLOPs an image (XLA's count, a
multiply-add is 2) against 11.0 for the original at 299x299: the modules see nearly the same map
sizes, only the stem is cheaper.

Initialisation as torchvision (``init_weights=True``): convolution and linear weights N(0, 0.1),
except AuxLogits.conv1 N(0, 0.01) and AuxLogits.fc N(0, 0.001) (torchvision truncates at +-2,
i.e. at 20 or more standard deviations, which changes nothing); BN scale 1 and bias 0. Linear
biases start at 0 (torchvision leaves PyTorch's default U(+-1/sqrt(fan_in)) there).
Not reproduced: torchvision's ``transform_input`` (a per-channel affine map from ImageNet-normalised
inputs to the [-1, 1] scaling of the TensorFlow weights), which belongs in preprocessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Literal, NamedTuple

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.layers import Activation, conv_general_dilated, get_activation
from cnnzoo.models.normalization import BatchNorm, RunningVar
from cnnzoo.models.outputs import AUX_COLLECTION
from cnnzoo.models.registry import check_fields, register_model


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class Conv(NamedTuple):
    """torchvision's ``BasicConv2d(in, width, kernel_size, stride, padding)``; ints mean square."""
    width: int
    kernel: int | tuple[int, int]
    stride: int = 1
    padding: int | tuple[int, int] = 0


class Branch(NamedTuple):
    """One path of an Inception module.

    ``pool`` runs first: ``'avg'`` is a 3x3/1 average pool padded by 1, ``'max'`` a 3x3/2 max-pool.
    Then ``convs`` in sequence; ``split`` (InceptionE) is a pair of convolutions applied side by
    side to that result and concatenated. Names follow torchvision: a branch of one convolution is
    ``name``; otherwise the convolutions are ``name_1``, ``name_2``, ... and a split's pair
    ``name_<k>a`` / ``name_<k>b``.
    """
    name: str
    convs: tuple[Conv, ...] = ()
    pool: str | None = None
    split: tuple[Conv, Conv] | None = None


# The modules, torchvision's InceptionA-E (inception.py), i.e. the paper's Fig. 5 (35x35), Fig. 10
# (grid reductions 35->17 and 17->8), Fig. 6 with n=7 (17x17) and Fig. 7 (8x8).
def inception_a(pool_features: int) -> tuple[Branch, ...]:
    return (Branch('branch1x1', (Conv(64, 1),)),
            Branch('branch5x5', (Conv(48, 1), Conv(64, 5, padding=2))),
            Branch('branch3x3dbl', (Conv(64, 1), Conv(96, 3, padding=1), Conv(96, 3, padding=1))),
            Branch('branch_pool', (Conv(pool_features, 1),), pool='avg'))


def inception_b() -> tuple[Branch, ...]:
    return (Branch('branch3x3', (Conv(384, 3, stride=2),)),
            Branch('branch3x3dbl', (Conv(64, 1), Conv(96, 3, padding=1), Conv(96, 3, stride=2))),
            Branch('branch_pool', pool='max'))


def inception_c(c7: int) -> tuple[Branch, ...]:
    def row(width: int) -> Conv:  # 1x7, the map size kept
        return Conv(width, (1, 7), padding=(0, 3))

    def col(width: int) -> Conv:  # 7x1
        return Conv(width, (7, 1), padding=(3, 0))

    return (Branch('branch1x1', (Conv(192, 1),)),
            Branch('branch7x7', (Conv(c7, 1), row(c7), col(192))),
            Branch('branch7x7dbl', (Conv(c7, 1), col(c7), row(c7), col(c7), row(192))),
            Branch('branch_pool', (Conv(192, 1),), pool='avg'))


def inception_d() -> tuple[Branch, ...]:
    return (Branch('branch3x3', (Conv(192, 1), Conv(320, 3, stride=2))),
            Branch('branch7x7x3', (Conv(192, 1), Conv(192, (1, 7), padding=(0, 3)),
                                   Conv(192, (7, 1), padding=(3, 0)), Conv(192, 3, stride=2))),
            Branch('branch_pool', pool='max'))


def inception_e() -> tuple[Branch, ...]:
    split = (Conv(384, (1, 3), padding=(0, 1)), Conv(384, (3, 1), padding=(1, 0)))
    return (Branch('branch1x1', (Conv(320, 1),)),
            Branch('branch3x3', (Conv(384, 1),), split=split),
            Branch('branch3x3dbl', (Conv(448, 1), Conv(384, 3, padding=1)), split=split),
            Branch('branch_pool', (Conv(192, 1),), pool='avg'))


# torchvision's Inception3: module names and the arguments they are built with (pool_features of
# InceptionA, channels_7x7 of InceptionC); output widths 256, 288, 288 | 768 x5 | 1280, 2048, 2048.
MIXED = (
    ('Mixed_5b', inception_a(32)),
    ('Mixed_5c', inception_a(64)),
    ('Mixed_5d', inception_a(64)),
    ('Mixed_6a', inception_b()),
    ('Mixed_6b', inception_c(128)),
    ('Mixed_6c', inception_c(160)),
    ('Mixed_6d', inception_c(160)),
    ('Mixed_6e', inception_c(192)),
    ('Mixed_7a', inception_d()),
    ('Mixed_7b', inception_e()),
    ('Mixed_7c', inception_e()),
)

# The stems: a named convolution, or 'maxpool' (3x3/2, unpadded). Table 1 / torchvision for
# 'imagenet' (299 -> 149 -> 147 -> 147 -> 73 -> 73 -> 71 -> 35); the CIFAR one keeps 32x32.
StemLayer = tuple[str, Conv] | Literal['maxpool']
STEMS: dict[str, tuple[StemLayer, ...]] = {
    'imagenet': (('Conv2d_1a_3x3', Conv(32, 3, stride=2)),
                 ('Conv2d_2a_3x3', Conv(32, 3)),
                 ('Conv2d_2b_3x3', Conv(64, 3, padding=1)),
                 'maxpool',
                 ('Conv2d_3b_1x1', Conv(80, 1)),
                 ('Conv2d_4a_3x3', Conv(192, 3)),
                 'maxpool'),
    'cifar': (('Conv2d_1a_3x3', Conv(32, 3, padding=1)),
              ('Conv2d_2a_3x3', Conv(32, 3, padding=1)),
              ('Conv2d_2b_3x3', Conv(64, 3, padding=1)),
              ('Conv2d_3b_1x1', Conv(80, 1)),
              ('Conv2d_4a_3x3', Conv(192, 3, padding=1))),
}


def check_window(x, window, padding, where: str):
    """A one-line ValueError when a ``window`` (after ``padding``) does not fit the map of ``x``."""
    (kh, kw), (ph, pw) = _pair(window), _pair(padding)
    h, w = x.shape[1:3]
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise ValueError(f'Inception v3: input too small: {where} has a {kh}x{kw} window but a {h}x{w} '
                         f'map; see cnnzoo.models.inception for the smallest inputs of each layout')


def max_pool(x, where: str):
    check_window(x, 3, 0, where)
    return nn.max_pool(x, (3, 3), strides=(2, 2))


class BasicConv2d(nn.Module):
    """torchvision's ``BasicConv2d``: bias-free convolution, BatchNorm, activation."""

    spec: Conv
    activation: Activation = 'relu'
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-3
    bn_running_var: RunningVar = 'biased'
    init_std: float = 0.1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        (ph, pw), s = _pair(self.spec.padding), self.spec.stride
        check_window(x, self.spec.kernel, self.spec.padding, '/'.join(self.path))
        x = nn.Conv(self.spec.width, _pair(self.spec.kernel), strides=(s, s), padding=((ph, ph), (pw, pw)),
                    use_bias=False, kernel_init=nn.initializers.normal(self.init_std), dtype=self.dtype,
                    param_dtype=jnp.float32, name='conv', conv_general_dilated=conv_general_dilated)(x)
        x = BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                      dtype=self.dtype, param_dtype=jnp.float32, running_var=self.bn_running_var, name='bn')(x)
        return get_activation(self.activation)(x)


class InceptionModule(nn.Module):
    """Runs ``branches`` (see ``Branch``) side by side and concatenates them on the channel axis."""

    branches: Sequence[Branch]
    conv_block: Any = BasicConv2d  # a BasicConv2d partial carrying the shared fields

    @nn.compact
    def __call__(self, x, *, train: bool):
        outputs = []
        for branch in self.branches:
            y = x
            if branch.pool == 'avg':  # count_include_pad, as F.avg_pool2d: always divide by 9
                y = nn.avg_pool(y, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
            elif branch.pool == 'max':
                y = max_pool(y, f'{self.name}/{branch.name}')
            single = len(branch.convs) == 1 and branch.split is None
            for i, spec in enumerate(branch.convs, start=1):
                y = self.conv_block(spec, name=branch.name if single else f'{branch.name}_{i}')(y, train=train)
            if branch.split is not None:
                k = len(branch.convs) + 1
                y = jnp.concatenate([self.conv_block(spec, name=f'{branch.name}_{k}{side}')(y, train=train)
                                     for spec, side in zip(branch.split, 'ab')], axis=-1)
            outputs.append(y)
        return jnp.concatenate(outputs, axis=-1)


class InceptionAux(nn.Module):
    """torchvision's ``InceptionAux``: avg pool, 1x1 conv 128, 5x5 conv 768, global pool, linear."""

    num_classes: int
    pool: tuple[int, int] = (5, 3)  # (window, stride) of the first average pool
    source: str = 'Mixed_6e'  # the module it reads, for error messages
    conv_block: Any = BasicConv2d
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        window, stride = self.pool
        h, w = x.shape[1:3]
        ph, pw = ((n - window) // stride + 1 if n >= window else 0 for n in (h, w))
        if min(ph, pw) < 5:
            raise ValueError(
                f'Inception v3: input too small for the auxiliary head: its {window}x{window}/{stride} pool '
                f'turns the {h}x{w} {self.source} map into {ph}x{pw}, less than its 5x5 convolution; the '
                f'ImageNet layout needs 299x299 with it (75 without: aux_logits=False), the CIFAR stem '
                f'aux_pool=(3, 3) and at least 31x31')
        y = nn.avg_pool(x, (window, window), strides=(stride, stride))
        y = self.conv_block(Conv(128, 1), name='conv0')(y, train=train)
        y = self.conv_block(Conv(768, 5), init_std=0.01, name='conv1')(y, train=train)
        y = jnp.mean(y, axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.001), dtype=self.dtype,
                        param_dtype=jnp.float32, name='fc')(y)


class InceptionV3(nn.Module):
    """Inception v3 (torchvision's ``Inception3``); see the module docstring.

    ``__call__`` returns the main logits; in train mode the auxiliary head's logits are sown into
    ``AUX_COLLECTION`` as ``{'logits': ..., 'weight': aux_weight}`` under the name ``aux_logits``.
    """

    num_classes: int = 1000
    aux_logits: bool = True
    aux_weight: float = 0.4
    aux_pool: tuple[int, int] = (5, 3)
    aux_after: str = 'Mixed_6e'  # the last 17x17 module (paper §4, Fig. 8)
    stem: Literal[tuple(STEMS)] = 'imagenet'
    mixed: Sequence[tuple[str, Sequence[Branch]]] = MIXED
    dropout: float = 0.5
    activation: Activation = 'relu'
    bn_momentum: float = 0.9  # flax: running = m * running + (1 - m) * batch; torch's momentum 0.1
    bn_epsilon: float = 1e-3  # torchvision's BasicConv2d (TF-Slim's value)
    bn_running_var: RunningVar = 'biased'  # 'unbiased': PyTorch's running variance (normalization.BatchNorm)
    dtype: Any = jnp.float32  # compute dtype; parameters are always float32

    def check_fields(self):
        names = [name for name, _ in self.mixed]
        if self.aux_logits and self.aux_after not in names:
            raise ValueError(f'InceptionV3 aux_after={self.aux_after!r} is not a module; modules: {", ".join(names)}')

    @nn.compact
    def __call__(self, x, *, train: bool):
        check_fields(self)
        conv_block = partial(BasicConv2d, activation=self.activation, bn_momentum=self.bn_momentum,
                             bn_epsilon=self.bn_epsilon, bn_running_var=self.bn_running_var, dtype=self.dtype)

        x = x.astype(self.dtype)
        for i, layer in enumerate(STEMS[self.stem]):
            if isinstance(layer, str):  # 'maxpool'
                x = max_pool(x, f'stem max-pool after {STEMS[self.stem][i - 1][0]}')
            else:
                name, spec = layer
                x = conv_block(spec, name=name)(x, train=train)

        for name, branches in self.mixed:
            x = InceptionModule(branches, conv_block=conv_block, name=name)(x, train=train)
            if name == self.aux_after and self.aux_logits and (train or self.is_initializing()):
                window, stride = self.aux_pool  # a list from a JSON config, too
                aux = InceptionAux(self.num_classes, pool=(window, stride), source=name,
                                   conv_block=conv_block, dtype=self.dtype, name='AuxLogits')(x, train=train)
                if train:
                    self.sow(AUX_COLLECTION, 'aux_logits',
                             {'logits': aux.astype(jnp.float32), 'weight': self.aux_weight})

        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.1), dtype=self.dtype,
                     param_dtype=jnp.float32, name='fc')(x)
        return x.astype(jnp.float32)


register_model('inception_v3', InceptionV3, min_input_size=299,
               cifar_fields={'stem': 'cifar', 'aux_pool': (3, 3)}, cifar_min_input_size=32)
