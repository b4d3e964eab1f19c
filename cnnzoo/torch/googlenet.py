"""The PyTorch twin of :class:`cnnzoo.models.googlenet.GoogLeNet`, in torchvision's layout.

Module names are torchvision's (``conv1.conv``, ``inception3a.branch2.0.bn``, ``aux1.fc1``, ``fc``;
see :mod:`cnnzoo.torch.keymaps`), so a torchvision ``googlenet`` ``state_dict`` (with or without
the auxiliary heads: ``aux_logits``) loads with ``strict=True``. ``branch3='5x5'`` and
``'double_3x3'`` change the third branch's kernels (``'double_3x3'`` adds ``branch3.2``), the
CIFAR stem is ``conv1`` alone (3x3/1 to 192 channels). Max-pools use ``ceil_mode=True``.

Outputs, as torchvision's: in eval mode, or without auxiliary heads, the logits; in train mode with
them, a ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)`` namedtuple (the heads in reverse
order, as torchvision returns them). ``aux_heads`` maps each auxiliary field to the name its flax
counterpart sows into the ``'aux_outputs'`` collection (``aux1/output``) and its loss weight; see
:func:`cnnzoo.torch.models.split_outputs`.

Initialisation as the flax module: convolution and linear weights N(0, 0.01), linear biases 0.
``bn_momentum`` is in torch's convention (0.1 is flax's 0.9); :func:`from_flax` converts.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.models import googlenet as flax_googlenet
from cnnzoo.models.registry import check_fields
from cnnzoo.torch.layers import BasicConv2d, get_activation, torch_momentum


@functools.cache
def outputs_type(num_aux: int):
    """The train-mode output namedtuple with ``num_aux`` auxiliary heads, the last head first."""
    return namedtuple('GoogLeNetOutputs', ['logits', *(f'aux_logits{k}' for k in range(num_aux, 0, -1))])


GoogLeNetOutputs = outputs_type(2)  # torchvision's


class Inception(nn.Module):
    """Fig. 2b: branches 1x1; 1x1, 3x3; 1x1, ``branch3`` kernels; 3x3/1 max-pool, 1x1."""

    def __init__(self, in_channels: int, widths: Sequence[int], branch3: str, conv):
        super().__init__()
        n1x1, reduce3, n3x3, reduce5, n5x5, pool_proj = widths
        self.branch1 = conv(in_channels, n1x1, 1)
        self.branch2 = nn.Sequential(conv(in_channels, reduce3, 1), conv(reduce3, n3x3, 3))
        third, channels = [conv(in_channels, reduce5, 1)], reduce5
        for kernel in flax_googlenet.BRANCH3[branch3]:
            third.append(conv(channels, n5x5, kernel))
            channels = n5x5
        self.branch3 = nn.Sequential(*third)
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), conv(in_channels, pool_proj, 1))
        self.out_channels = n1x1 + n3x3 + n5x5 + pool_proj

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """4x4 adaptive average pool, 1x1 conv to 128, fc1 to 1024, activation, dropout, fc2."""

    def __init__(self, in_channels: int, num_classes: int, conv, *, dropout: float, activation: str):
        super().__init__()
        self.conv = conv(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)
        self.act = get_activation(activation)

    def forward(self, x):
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(self.dropout(self.act(self.fc1(x))))


class GoogLeNet(nn.Module):
    def __init__(self, layout: Sequence[Any] = flax_googlenet.TABLE1, *, num_classes: int = 1000,
                 stem: str = 'imagenet', branch3: str = '3x3', aux_logits: bool = True,
                 aux_after: Sequence[str] = ('inception4a', 'inception4d'), aux_weight: float = 0.3,
                 aux_dropout: float = 0.7, dropout: float = 0.2, activation: str = 'relu',
                 bn_momentum: float = 0.1, bn_epsilon: float = 1e-3):
        super().__init__()
        # The flax module's field checks, on the same values.
        check_fields(flax_googlenet.GoogLeNet(layout=tuple(layout), stem=stem, branch3=branch3,
                                              aux_logits=aux_logits, aux_after=tuple(aux_after),
                                              activation=activation))
        conv = functools.partial(_padded_conv, activation=activation, bn_momentum=bn_momentum,
                                 bn_epsilon=bn_epsilon)
        self.stem = stem
        if stem == 'imagenet':
            self.conv1 = conv(3, 64, 7, 2)
            self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = conv(64, 64, 1)
            self.conv3 = conv(64, 192, 3)
            self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        else:
            self.conv1 = conv(3, 192, 3)
        self.layout = [name for name, _ in layout]
        self.aux_after = list(aux_after) if aux_logits else []
        channels, aux_channels = 192, {}
        for name, widths in layout:
            if isinstance(widths, int):
                setattr(self, name, nn.MaxPool2d(widths, 2, ceil_mode=True))
                continue
            module = Inception(channels, widths, branch3, conv)
            setattr(self, name, module)
            channels = aux_channels[name] = module.out_channels
        self.aux_heads = {}
        for k, name in enumerate(self.aux_after, start=1):  # registered after the modules, as torchvision
            setattr(self, f'aux{k}', InceptionAux(aux_channels[name], num_classes, conv, dropout=aux_dropout,
                                                  activation=activation))
            self.aux_heads[f'aux_logits{k}'] = (f'aux{k}/output', aux_weight)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.conv1(x)
        if self.stem == 'imagenet':
            x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(x))))
        aux = {}
        for name in self.layout:
            x = getattr(self, name)(x)
            if self.training and name in self.aux_after:
                k = self.aux_after.index(name) + 1
                aux[f'aux_logits{k}'] = getattr(self, f'aux{k}')(x)
        logits = self.fc(self.dropout(torch.flatten(x.mean(dim=(2, 3)), 1)))
        if not aux:
            return logits
        return outputs_type(len(aux))(logits=logits, **aux)


def _padded_conv(in_channels, out_channels, kernel, stride=1, **kwargs) -> BasicConv2d:
    return BasicConv2d(in_channels, out_channels, kernel, stride, kernel // 2, **kwargs)


def from_flax(model: flax_googlenet.GoogLeNet) -> GoogLeNet:
    """The twin of the (unbound) flax ``model``, with fresh weights."""
    return GoogLeNet(model.layout, num_classes=model.num_classes, stem=model.stem, branch3=model.branch3,
                     aux_logits=model.aux_logits, aux_after=model.aux_after, aux_weight=model.aux_weight,
                     aux_dropout=model.aux_dropout, dropout=model.dropout, activation=model.activation,
                     bn_momentum=torch_momentum(model.bn_momentum), bn_epsilon=model.bn_epsilon)
