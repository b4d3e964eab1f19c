"""PyTorch counterparts of :mod:`cnnzoo.models.layers`: the activation table and its module, and
torchvision's ``BasicConv2d`` (GoogLeNet, Inception v3)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

# The same names and functions as cnnzoo.models.layers.ACTIVATIONS (a test keeps them in step).
ACTIVATIONS = {
    'relu': F.relu,
    'leaky_relu': functools.partial(F.leaky_relu, negative_slope=0.01),
    'sigmoid': torch.sigmoid,
    'tanh': torch.tanh,
    'gelu': F.gelu,  # exact (erf) form, as cnnzoo's
    'silu': F.silu,
    'elu': F.elu,
}


def get_activation(name: str):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f'unknown activation {name!r}; known activations: {", ".join(ACTIVATIONS)}') from None


class Activation(nn.Module):
    """An activation from the table as a module (for ``nn.Sequential``); it has no parameters."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.fn = get_activation(name)

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


def torch_momentum(flax_momentum: float) -> float:
    """flax BatchNorm keeps ``m * running + (1 - m) * batch``; torch ``(1 - m) * running + m * batch``."""
    return round(1.0 - flax_momentum, 12)


class BasicConv2d(nn.Module):
    """torchvision's ``BasicConv2d``: a bias-free convolution, BatchNorm, activation; its parameters
    are ``conv.weight`` and ``bn.*``. Kernel, stride and padding are ints or (height, width) pairs."""

    def __init__(self, in_channels: int, out_channels: int, kernel, stride=1, padding=0, *,
                 activation: str = 'relu', bn_momentum: float = 0.1, bn_epsilon: float = 1e-3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_epsilon, momentum=bn_momentum)
        self.act = get_activation(activation)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))
