"""The PyTorch twin of :class:`cnnzoo.models.alexnet.AlexNet`, in torchvision's layout.

``features`` is one ``nn.Sequential`` (per convolution: conv, activation, [LRN], [max-pool 3x3/2]),
``avgpool`` the adaptive pooling (6x6, or 3x3 with the CIFAR head) and ``classifier`` the three
linear layers with their activations and dropouts, so a torchvision ``alexnet`` ``state_dict``
loads into ``create_torch_model('alexnet', num_classes=1000)`` with ``strict=True``. The other
fields change the indices as :func:`cnnzoo.torch.keymaps.alexnet_indices` counts them:
``alexnet_2012``'s LRN modules shift ``features``, its dropout after the hidden layers
(``dropout_at='fc_outputs'``) shifts ``classifier``, and ``groups=2`` gives conv2, conv4 and conv5
``groups=2`` (their weights have half the input channels).

Initialisation: PyTorch's defaults, as the flax module's (and torchvision's).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnzoo.models import alexnet as flax_alexnet
from cnnzoo.models.normalization import LocalResponseNorm as FlaxLRN
from cnnzoo.models.registry import check_fields
from cnnzoo.torch.layers import Activation
from cnnzoo.torch.vgg import torch_lrn


class AlexNet(nn.Module):
    def __init__(self, widths: Sequence[int] = flax_alexnet.TORCHVISION_WIDTHS, *, num_classes: int = 1000,
                 stem: str = 'imagenet', head: str = 'imagenet', lrn: bool = False, groups: int = 1,
                 hidden: int = 4096, dropout: float = 0.5, dropout_at: str = 'fc_inputs',
                 activation: str = 'relu'):
        super().__init__()
        # The flax module's field checks, on the same values.
        check_fields(flax_alexnet.AlexNet(widths=tuple(widths), stem=stem, head=head, dropout_at=dropout_at,
                                          activation=activation))
        layers, channels = [], 3
        for index, (width, (kernel, stride, pad)) in enumerate(zip(widths, flax_alexnet.KERNELS), start=1):
            if index == 1 and stem == 'cifar':
                kernel, stride, pad = flax_alexnet.CIFAR_CONV1
            layers += [nn.Conv2d(channels, width, kernel, stride, pad,
                                 groups=groups if index in flax_alexnet.GROUPED else 1),
                       Activation(activation)]
            if lrn and index in flax_alexnet.LRN_AFTER:
                layers.append(torch_lrn(FlaxLRN()))  # the flax module's LRN has the paper's constants
            if index in flax_alexnet.POOL_AFTER:
                layers.append(nn.MaxPool2d(3, 2))
            channels = width
        self.features = nn.Sequential(*layers)
        pooled = flax_alexnet.POOLED_SIZE[head]
        self.avgpool = nn.AdaptiveAvgPool2d((pooled, pooled))
        classifier, features = [], channels * pooled * pooled
        for _ in range(2):
            if dropout_at == 'fc_inputs':
                classifier.append(nn.Dropout(dropout))
            classifier += [nn.Linear(features, hidden), Activation(activation)]
            if dropout_at == 'fc_outputs':
                classifier.append(nn.Dropout(dropout))
            features = hidden
        classifier.append(nn.Linear(features, num_classes))
        self.classifier = nn.Sequential(*classifier)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def from_flax(model: flax_alexnet.AlexNet) -> AlexNet:
    """The twin of the (unbound) flax ``model``, with fresh weights."""
    return AlexNet(model.widths, num_classes=model.num_classes, stem=model.stem, head=model.head, lrn=model.lrn,
                   groups=model.groups, hidden=model.hidden, dropout=model.dropout, dropout_at=model.dropout_at,
                   activation=model.activation)
