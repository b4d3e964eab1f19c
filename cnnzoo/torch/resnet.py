"""The PyTorch twin of :class:`cnnzoo.models.resnet.ResNet`: the same network, the same ablations.

Module names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``,
``fc``; see :mod:`cnnzoo.torch.keymaps`), so with the ImageNet layout (``stem='imagenet'``,
``shortcut='B'``, standard residuals) a torchvision ResNet ``state_dict`` loads with
``strict=True``. The fields mean what they mean in the flax class, except ``bn_momentum``, which
is in torch's convention (0.1 here is flax's 0.9); :func:`from_flax` converts. The inverted
bottleneck (``residual='inverted_bottleneck'``), which torchvision's ResNet lacks, names its layers
as the flax block does: ``layer{i}.{j}.expand_conv``, ``.expand_bn``, ``.depthwise_conv``
(``groups`` equal to its channels), ``.depthwise_bn``, ``.project_conv``, ``.project_bn``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.models import resnet as flax_resnet
from cnnzoo.torch.layers import get_activation, torch_momentum


class Block(nn.Module):
    """A basic (two 3x3 convs) or bottleneck (1x1, 3x3 carrying the stride, 1x1) residual block, or
    with ``residual='inverted_bottleneck'`` an inverted residual of the same input and output widths
    (1x1 expansion to ``expansion_factor * in_features``, depthwise 3x3 carrying the stride, 1x1
    linear projection)."""

    def __init__(self, in_features: int, features: int, stride: int, *, bottleneck: bool, expansion: int,
                 shortcut: str, residual: str, activation: str, zero_init_last_bn: bool,
                 bn_momentum: float, bn_epsilon: float, expansion_factor: int = 6):
        super().__init__()
        self.stride, self.shortcut, self.residual = stride, shortcut, residual
        self.act = get_activation(activation)
        self.out_features = features * expansion
        preact = residual == 'preact'
        bn = lambda n: nn.BatchNorm2d(n, eps=bn_epsilon, momentum=bn_momentum)  # noqa: E731
        if residual == 'inverted_bottleneck':
            # Registered in the flax block's order of use, which is the state_dict's (and the key map's).
            hidden = expansion_factor * in_features
            self.expand_conv = nn.Conv2d(in_features, hidden, 1, bias=False)
            self.expand_bn = bn(hidden)
            self.depthwise_conv = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
            self.depthwise_bn = bn(hidden)
            self.project_conv = nn.Conv2d(hidden, self.out_features, 1, bias=False)
            self.project_bn = bn(self.out_features)
            shapes = []
        elif bottleneck:
            shapes = [(in_features, features, 1, 1), (features, features, 3, stride),
                      (features, self.out_features, 1, 1)]
        else:
            shapes = [(in_features, features, 3, stride), (features, features, 3, 1)]
        self.num_convs = len(shapes)
        for k, (cin, cout, kernel, s) in enumerate(shapes, start=1):
            setattr(self, f'conv{k}', nn.Conv2d(cin, cout, kernel, s, kernel // 2, bias=False))
            # Pre-activation blocks normalise each convolution's input, post-activation its output.
            setattr(self, f'bn{k}', bn(cin if preact else cout))
        if zero_init_last_bn:  # the branch's last BN: after its last conv, or (preact) just before it
            last = self.project_bn if residual == 'inverted_bottleneck' else getattr(self, f'bn{self.num_convs}')
            nn.init.zeros_(last.weight)
        self.downsample = None
        if shortcut == 'B' and (in_features != self.out_features or stride != 1):
            proj = [nn.Conv2d(in_features, self.out_features, 1, stride, bias=False)]
            if not preact:
                proj.append(bn(self.out_features))
            self.downsample = nn.Sequential(*proj)
        self.zero_pad = shortcut == 'A' and (in_features != self.out_features or stride != 1)

    def shortcut_path(self, x, pre):
        if self.shortcut == 'none':
            return None
        if self.downsample is not None:
            return self.downsample(pre if self.residual == 'preact' else x)
        if self.zero_pad:  # option A: subsample, then zero channels split around the input's
            x = x[:, :, ::self.stride, ::self.stride]
            extra = self.out_features - x.shape[1]
            return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))
        return x

    def forward(self, x):
        act = self.act
        n = self.num_convs
        if self.residual == 'inverted_bottleneck':  # linear at the end: no activation after project_bn
            y = act(self.expand_bn(self.expand_conv(x)))
            y = act(self.depthwise_bn(self.depthwise_conv(y)))
            y = self.project_bn(self.project_conv(y))
            short = self.shortcut_path(x, x)
            return y if short is None else y + short
        if self.residual == 'preact':
            pre = act(self.bn1(x))
            y = self.conv1(pre)
            for k in range(2, n + 1):
                y = getattr(self, f'conv{k}')(act(getattr(self, f'bn{k}')(y)))
            short = self.shortcut_path(x, pre)
            return y if short is None else y + short
        y = x
        for k in range(1, n):
            y = act(getattr(self, f'bn{k}')(getattr(self, f'conv{k}')(y)))
        y = getattr(self, f'bn{n}')(getattr(self, f'conv{n}')(y))
        short = self.shortcut_path(x, x)
        if short is None:
            return act(y)
        if self.residual == 'standard':
            return act(y + short)
        if self.residual == 'relu_before_add':
            return act(y) + short
        return act(y + short * short)  # 'square'


class ResNet(nn.Module):
    def __init__(self, stage_sizes: Sequence[int], *, block: str = 'basic', expansion: int | None = None,
                 stage_widths: Sequence[int] = (16, 32, 64), num_classes: int = 10, stem: str = 'cifar',
                 shortcut: str = 'A', residual: str = 'standard', expansion_factor: int = 6,
                 activation: str = 'relu', zero_init_last_bn: bool = False, bn_momentum: float = 0.1,
                 bn_epsilon: float = 1e-5):
        super().__init__()
        for field, value, allowed in (('residual', residual, flax_resnet.RESIDUAL_FORMS),
                                      ('shortcut', shortcut, flax_resnet.SHORTCUTS),
                                      ('stem', stem, flax_resnet.STEMS), ('block', block, ('basic', 'bottleneck'))):
            if value not in allowed:
                raise ValueError(f'ResNet {field}={value!r}; choose one of {", ".join(allowed)}')
        bottleneck = block == 'bottleneck'
        expansion = expansion or (4 if bottleneck else 1)
        preact = residual == 'preact'
        self.act = get_activation(activation)
        self.stem = stem
        self.preact = preact
        bn = lambda n: nn.BatchNorm2d(n, eps=bn_epsilon, momentum=bn_momentum)  # noqa: E731

        width = stage_widths[0]
        if stem == 'imagenet':
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.maxpool = None
        self.bn1 = bn(width) if (stem == 'imagenet' or not preact) else None
        in_features = width
        for i, (size, width) in enumerate(zip(stage_sizes, stage_widths, strict=True)):
            blocks = []
            for j in range(size):
                blocks.append(Block(in_features, width, 2 if (i > 0 and j == 0) else 1, bottleneck=bottleneck,
                                    expansion=expansion, shortcut=shortcut, residual=residual,
                                    activation=activation, zero_init_last_bn=zero_init_last_bn,
                                    bn_momentum=bn_momentum, bn_epsilon=bn_epsilon,
                                    expansion_factor=expansion_factor))
                in_features = blocks[-1].out_features
            setattr(self, f'layer{i + 1}', nn.Sequential(*blocks))
        self.num_stages = len(stage_sizes)
        self.final_bn = bn(in_features) if preact else None
        self.fc = nn.Linear(in_features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')

    def forward(self, x):
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.act(self.bn1(x))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f'layer{i}')(x)
        if self.final_bn is not None:
            x = self.act(self.final_bn(x))
        return self.fc(torch.flatten(x.mean(dim=(2, 3)), 1))


def from_flax(model: flax_resnet.ResNet) -> ResNet:
    """The twin of the (unbound) flax ``model``, with fresh weights."""
    block = model.block(features=1)
    return ResNet(model.stage_sizes, block='bottleneck' if isinstance(block, flax_resnet.Bottleneck) else 'basic',
                  expansion=block.expansion, stage_widths=model.stage_widths, num_classes=model.num_classes,
                  stem=model.stem, shortcut=model.shortcut, residual=model.residual,
                  expansion_factor=model.expansion_factor, activation=model.activation,
                  zero_init_last_bn=model.zero_init_last_bn, bn_momentum=torch_momentum(model.bn_momentum),
                  bn_epsilon=model.bn_epsilon)
