"""The PyTorch twin of :class:`cnnzoo.models.inception.InceptionV3` (torchvision's ``Inception3``).

Built from the flax module's own data (``STEMS``, ``MIXED``: ``Conv`` and ``Branch`` tuples), with
torchvision's module names (``Conv2d_1a_3x3.conv``, ``Mixed_5b.branch5x5_1.bn``,
``Mixed_7b.branch3x3_2a``, ``AuxLogits.conv0``, ``fc``), registered in torchvision's order
(``AuxLogits`` between ``Mixed_6e`` and ``Mixed_7a``), so a torchvision ``inception_v3``
``state_dict`` loads with ``strict=True``; the CIFAR stem has the same parameter shapes.

Outputs, as torchvision's: in eval mode, or without the auxiliary head, the logits; in train mode
with it, an ``InceptionOutputs(logits, aux_logits)`` namedtuple. ``aux_heads`` maps ``aux_logits``
to the name the flax model sows it under in ``'aux_outputs'`` and its loss weight; see
:func:`cnnzoo.torch.models.split_outputs`. torchvision's ``transform_input`` is not reproduced
(nor is it in the flax module).

Initialisation as the flax module: convolution and linear weights N(0, 0.1), ``AuxLogits.conv1``
N(0, 0.01), ``AuxLogits.fc`` N(0, 0.001), linear biases 0. ``bn_momentum`` is in torch's convention
(0.1 is flax's 0.9); :func:`from_flax` converts.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.models import inception as flax_inception
from cnnzoo.torch.keymaps import inception_conv_names
from cnnzoo.torch.layers import BasicConv2d, get_activation, torch_momentum

InceptionOutputs = namedtuple('InceptionOutputs', ['logits', 'aux_logits'])


def _conv(in_channels: int, spec: flax_inception.Conv, **kwargs) -> BasicConv2d:
    return BasicConv2d(in_channels, spec.width, spec.kernel, spec.stride, spec.padding, **kwargs)


class InceptionModule(nn.Module):
    """One ``Mixed_*`` module: its ``Branch``es side by side, concatenated on channels in order."""

    def __init__(self, in_channels: int, branches: Sequence[flax_inception.Branch], conv):
        super().__init__()
        self.plan = []  # (pool, sequence names, split names) per branch
        self.out_channels = 0
        for branch in branches:
            sequence, split = inception_conv_names(branch)
            channels = in_channels
            for name, spec in zip(sequence, branch.convs, strict=True):
                setattr(self, name, conv(channels, spec))
                channels = spec.width
            for name, spec in zip(split, branch.split or (), strict=True):
                setattr(self, name, conv(channels, spec))
            self.out_channels += sum(s.width for s in branch.split) if branch.split else channels
            self.plan.append((branch.pool, sequence, split))

    def forward(self, x):
        outputs = []
        for pool, sequence, split in self.plan:
            y = x
            if pool == 'avg':  # count_include_pad: divides by 9 at the border too, as the flax module
                y = F.avg_pool2d(y, 3, 1, 1)
            elif pool == 'max':
                y = F.max_pool2d(y, 3, 2)
            for name in sequence:
                y = getattr(self, name)(y)
            if split:
                y = torch.cat([getattr(self, name)(y) for name in split], 1)
            outputs.append(y)
        return torch.cat(outputs, 1)


class InceptionAux(nn.Module):
    """Average pool (``pool`` = window, stride), 1x1 conv to 128, 5x5 conv to 768, global pool, fc."""

    def __init__(self, in_channels: int, num_classes: int, conv, pool: Sequence[int]):
        super().__init__()
        self.pool = tuple(pool)
        self.conv0 = conv(in_channels, flax_inception.Conv(128, 1))
        self.conv1 = conv(128, flax_inception.Conv(768, 5))
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x):
        window, stride = self.pool
        x = self.conv1(self.conv0(F.avg_pool2d(x, window, stride)))
        return self.fc(torch.flatten(x.mean(dim=(2, 3)), 1))


class InceptionV3(nn.Module):
    def __init__(self, *, num_classes: int = 1000, aux_logits: bool = True, aux_weight: float = 0.4,
                 aux_pool: Sequence[int] = (5, 3), aux_after: str = 'Mixed_6e', stem: str = 'imagenet',
                 mixed=flax_inception.MIXED, dropout: float = 0.5, activation: str = 'relu',
                 bn_momentum: float = 0.1, bn_epsilon: float = 1e-3):
        super().__init__()
        if stem not in flax_inception.STEMS:
            raise ValueError(f'InceptionV3 stem={stem!r}; choose one of {", ".join(flax_inception.STEMS)}')
        get_activation(activation)
        names = [name for name, _ in mixed]
        if aux_logits and aux_after not in names:
            raise ValueError(f'InceptionV3 aux_after={aux_after!r} is not a module; modules: {", ".join(names)}')
        conv = functools.partial(_conv, activation=activation, bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)

        self.order = []  # the forward order of this module's children
        channels, pools = 3, 0
        for entry in flax_inception.STEMS[stem]:
            if isinstance(entry, str):  # 'maxpool'
                pools += 1
                name, module = f'maxpool{pools}', nn.MaxPool2d(3, 2)
            else:
                name, spec = entry
                module, channels = conv(channels, spec), spec.width
            setattr(self, name, module)
            self.order.append(name)
        self.aux_after = aux_after if aux_logits else None
        self.aux_heads = {}
        for name, branches in mixed:
            module = InceptionModule(channels, branches, conv)
            setattr(self, name, module)
            self.order.append(name)
            channels = module.out_channels
            if name == self.aux_after:  # registered here, as torchvision
                self.AuxLogits = InceptionAux(channels, num_classes, conv, aux_pool)
                self.aux_heads['aux_logits'] = ('aux_logits', aux_weight)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0, 0.1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.aux_after is not None:
            nn.init.normal_(self.AuxLogits.conv1.conv.weight, 0, 0.01)
            nn.init.normal_(self.AuxLogits.fc.weight, 0, 0.001)

    def forward(self, x):
        aux = None
        for name in self.order:
            x = getattr(self, name)(x)
            if self.training and name == self.aux_after:
                aux = self.AuxLogits(x)
        logits = self.fc(self.dropout(torch.flatten(x.mean(dim=(2, 3)), 1)))
        return logits if aux is None else InceptionOutputs(logits, aux)


def from_flax(model: flax_inception.InceptionV3) -> InceptionV3:
    """The twin of the (unbound) flax ``model``, with fresh weights."""
    return InceptionV3(num_classes=model.num_classes, aux_logits=model.aux_logits, aux_weight=model.aux_weight,
                       aux_pool=model.aux_pool, aux_after=model.aux_after, stem=model.stem, mixed=model.mixed,
                       dropout=model.dropout, activation=model.activation,
                       bn_momentum=torch_momentum(model.bn_momentum), bn_epsilon=model.bn_epsilon)
