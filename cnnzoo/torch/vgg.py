"""The PyTorch twin of :class:`cnnzoo.models.vgg.VGG`, in torchvision's layout.

``features`` is one ``nn.Sequential`` (conv, [BN], activation, [LRN], max-pool), ``avgpool`` the
adaptive 7x7 pooling and ``classifier`` the head, so a torchvision ``vgg*``/``vgg*_bn``
``state_dict`` loads with ``strict=True``. The CIFAR head is one ``nn.Linear`` named
``classifier`` over the flattened 1x1x512 map (32x32 inputs).

LRN: cnnzoo's ``LocalResponseNorm`` (``alpha_over_n=False``) uses alpha as the paper states it;
``torch.nn.LocalResponseNorm`` divides alpha by the window size, so the twin passes ``alpha * size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cnnzoo.models import vgg as flax_vgg
from cnnzoo.models.normalization import LocalResponseNorm as FlaxLRN
from cnnzoo.torch.layers import Activation, torch_momentum


def torch_lrn(lrn: FlaxLRN) -> nn.LocalResponseNorm:
    """``nn.LocalResponseNorm`` computing the same function as cnnzoo's ``lrn`` module."""
    alpha = lrn.alpha if lrn.alpha_over_n else lrn.alpha * lrn.size
    return nn.LocalResponseNorm(lrn.size, alpha=alpha, beta=lrn.beta, k=lrn.k)


class VGG(nn.Module):
    def __init__(self, config: Sequence[Any], *, num_classes: int = 1000, head: str = 'imagenet',
                 batch_norm: bool = False, lrn: bool = False, activation: str = 'relu', dropout: float = 0.5,
                 hidden: int = 4096, bn_momentum: float = 0.1, bn_epsilon: float = 1e-5):
        super().__init__()
        if head not in flax_vgg.HEADS:
            raise ValueError(f'VGG head={head!r}; choose one of {", ".join(flax_vgg.HEADS)}')
        layers, channels = [], 3
        for entry in config:
            if entry == 'M':
                layers.append(nn.MaxPool2d(2, 2))
                continue
            width, kernel = entry if isinstance(entry, tuple) else (entry, 3)
            layers.append(nn.Conv2d(channels, width, kernel, padding=kernel // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width, eps=bn_epsilon, momentum=bn_momentum))
            layers.append(Activation(activation))
            if lrn and channels == 3:
                layers.append(torch_lrn(FlaxLRN()))  # the flax VGG's LRN has the default (paper) constants
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = head
        if head == 'cifar':
            self.avgpool = None
            self.classifier = nn.Linear(channels, num_classes)
        else:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(channels * 7 * 7, hidden), Activation(activation), nn.Dropout(dropout),
                nn.Linear(hidden, hidden), Activation(activation), nn.Dropout(dropout),
                nn.Linear(hidden, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.features(x)
        if self.avgpool is not None:
            x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))


def from_flax(model: flax_vgg.VGG) -> VGG:
    """The twin of the (unbound) flax ``model``, with fresh weights."""
    return VGG(model.config, num_classes=model.num_classes, head=model.head, batch_norm=model.batch_norm,
               lrn=model.lrn, activation=model.activation, dropout=model.dropout, hidden=model.hidden,
               bn_momentum=torch_momentum(model.bn_momentum), bn_epsilon=model.bn_epsilon)
