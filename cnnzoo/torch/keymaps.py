"""Which cnnzoo (flax) layer is which PyTorch module: one key map per model family.

A key map lists the model's layers in PyTorch's ``state_dict`` order, each as a :class:`Layer`: its
path in the flax variables, its module name in the PyTorch ``state_dict``, and what kind of layer
it is (which decides how its arrays are laid out). The PyTorch names are torchvision's:

- ResNet (torchvision.models.resnet): ``conv1``, ``bn1``, ``layer{i}.{j}.conv1/bn1/conv2/bn2[/conv3/bn3]``,
  ``layer{i}.{j}.downsample.0`` (1x1 conv) and ``.1`` (BN), ``fc``. The CIFAR ResNets of He et al.
  and every ablation use the same names; ``final_bn`` is the pre-activation net's last BN, which
  torchvision has no counterpart for. The inverted bottleneck (``residual='inverted_bottleneck'``),
  which torchvision's ResNet lacks, keeps the flax names: ``layer{i}.{j}.expand_conv/expand_bn/
  depthwise_conv/depthwise_bn/project_conv/project_bn``.
- VGG (torchvision.models.vgg): ``features.N`` numbered through the sequence of conv, [BN], ReLU,
  [LRN] and max-pool modules; ``classifier.0/3/6`` for the ImageNet head's three linear layers
  (ReLU and Dropout in between), ``classifier`` for the CIFAR head's one linear layer.
- AlexNet (torchvision.models.alexnet): ``features.N`` numbered through conv, ReLU, [LRN], [max-pool]
  (``features.0/3/6/8/10`` in torchvision's layout), ``classifier.N`` through Dropout, Linear, ReLU
  (``classifier.1/4/6``; ``0/3/6`` with dropout on the hidden layers' outputs, ``alexnet_2012``).
- GoogLeNet (torchvision.models.googlenet): ``conv1``..``conv3`` and every branch are ``BasicConv2d``
  (``.conv``, ``.bn``); ``inception3a.branch1``, ``.branch2.0``, ``.branch2.1``, ``.branch3.0``,
  ``.branch3.1`` [``.branch3.2``], ``.branch4.1``; then ``aux1``/``aux2`` (``.conv``, ``.fc1``,
  ``.fc2``) and ``fc``. flax joins a Sequential's index with ``_`` (``branch2_0``).
- Inception v3 (torchvision.models.inception_v3): ``Conv2d_1a_3x3``.. and ``Mixed_5b.branch1x1``,
  ``Mixed_7b.branch3x3_2a``, ... (``.conv``, ``.bn``), ``AuxLogits.conv0/conv1/fc`` right after
  ``Mixed_6e``, ``fc``: the flax names are the same.

Auxiliary classifiers (GoogLeNet's ``fc2``, Inception's ``AuxLogits.fc``) are ``head`` layers like
the main one: their width is the class count, so fine-tuning re-initialises them too.

Key maps are computed from the flax module's fields, without PyTorch, so that converting a
``state_dict`` of numpy arrays needs no torch. A new family is one function here plus its entry in
``KEY_MAPS``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from cnnzoo.models import alexnet as flax_alexnet
from cnnzoo.models import googlenet as flax_googlenet
from cnnzoo.models import inception as flax_inception
from cnnzoo.models.resnet import Bottleneck, ResNet
from cnnzoo.models.vgg import VGG

KINDS = ('conv', 'linear', 'bn')


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer with parameters, named on both sides.

    ``chw_channels`` (linear layers only): the layer reads a flattened ``channels x H x W`` map;
    PyTorch flattens it in (C, H, W) order, flax in (H, W, C) order, so the converter permutes the
    weight's input rows. ``head`` marks the classifier layer that fine-tuning may re-initialise.
    """

    flax: tuple[str, ...]
    torch: str
    kind: str
    bias: bool = True
    chw_channels: int = 0
    head: bool = False

    def torch_keys(self) -> list[str]:
        """This layer's ``state_dict`` keys, in PyTorch's order."""
        if self.kind == 'bn':
            names = ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
        else:
            names = ['weight', 'bias'] if self.bias else ['weight']
        return [f'{self.torch}.{n}' for n in names]


def resnet_key_map(model: ResNet) -> list[Layer]:
    preact = model.residual == 'preact'
    layers = [Layer(('stem_conv',), 'conv1', 'conv', bias=False)]
    if model.stem == 'imagenet' or not preact:
        layers.append(Layer(('stem_bn',), 'bn1', 'bn'))
    in_features = model.stage_widths[0]
    for i, (size, width) in enumerate(zip(model.stage_sizes, model.stage_widths, strict=True)):
        for j in range(size):
            stride = 2 if (i > 0 and j == 0) else 1
            block = model.block(features=width, stride=stride)  # unbound: only its fields are read
            flax_name, torch_name = f'stage{i + 1}_block{j + 1}', f'layer{i + 1}.{j}'
            if model.residual == 'inverted_bottleneck':
                names = [('expand_conv', 'conv'), ('expand_bn', 'bn'), ('depthwise_conv', 'conv'),
                         ('depthwise_bn', 'bn'), ('project_conv', 'conv'), ('project_bn', 'bn')]
            else:
                n = 3 if isinstance(block, Bottleneck) else 2
                names = [(f'{kind}{k}', kind) for k in range(1, n + 1) for kind in ('conv', 'bn')]
            for name, kind in names:
                path, key = (flax_name, name), f'{torch_name}.{name}'
                layers.append(Layer(path, key, 'conv', bias=False) if kind == 'conv' else Layer(path, key, 'bn'))
            out_features = width * block.expansion
            if model.shortcut == 'B' and (in_features != out_features or stride != 1):
                layers.append(Layer((flax_name, 'proj_conv'), f'{torch_name}.downsample.0', 'conv', bias=False))
                if not preact:
                    layers.append(Layer((flax_name, 'proj_bn'), f'{torch_name}.downsample.1', 'bn'))
            in_features = out_features
    if preact:
        layers.append(Layer(('final_bn',), 'final_bn', 'bn'))
    layers.append(Layer(('head',), 'fc', 'linear', head=True))
    return layers


def vgg_features_indices(model: VGG) -> list[tuple[int, int | None]]:
    """For each convolution, its index in ``features`` and its BN's index (None without BN).

    The numbering is that of the ``features`` Sequential: conv, [BN], activation, [LRN after the
    first activation], and one max-pool per ``'M'``.
    """
    indices, position, convs = [], 0, 0
    for entry in model.config:
        if entry == 'M':
            position += 1
            continue
        convs += 1
        conv_at = position
        position += 1
        bn_at = None
        if model.batch_norm:
            bn_at = position
            position += 1
        position += 1  # the activation
        if model.lrn and convs == 1:
            position += 1
        indices.append((conv_at, bn_at))
    return indices


def vgg_key_map(model: VGG) -> list[Layer]:
    layers = []
    for k, (conv_at, bn_at) in enumerate(vgg_features_indices(model), start=1):
        layers.append(Layer((f'conv{k}',), f'features.{conv_at}', 'conv'))
        if bn_at is not None:
            layers.append(Layer((f'bn{k}',), f'features.{bn_at}', 'bn'))
    last = model.config[[i for i, e in enumerate(model.config) if e != 'M'][-1]]
    channels = last[0] if isinstance(last, tuple) else last
    if model.head == 'cifar':
        layers.append(Layer(('head',), 'classifier', 'linear', chw_channels=channels, head=True))
    else:
        layers += [Layer(('fc1',), 'classifier.0', 'linear', chw_channels=channels),
                   Layer(('fc2',), 'classifier.3', 'linear'),
                   Layer(('head',), 'classifier.6', 'linear', head=True)]
    return layers


def alexnet_indices(model: flax_alexnet.AlexNet) -> tuple[list[int], list[int]]:
    """The ``features`` indices of conv1..conv5 and the ``classifier`` indices of fc1, fc2, head.

    ``features`` holds conv, activation, [LRN], [max-pool] per convolution; ``classifier`` holds
    Dropout before (torchvision) or after (the paper) each hidden layer's Linear and activation.
    """
    convs, position = [], 0
    for index in range(1, len(flax_alexnet.KERNELS) + 1):
        convs.append(position)
        position += 2  # the convolution and its activation
        position += int(model.lrn and index in flax_alexnet.LRN_AFTER) + int(index in flax_alexnet.POOL_AFTER)
    linears = [1, 4, 6] if model.dropout_at == 'fc_inputs' else [0, 3, 6]
    return convs, linears


def alexnet_key_map(model: flax_alexnet.AlexNet) -> list[Layer]:
    convs, (fc1, fc2, head) = alexnet_indices(model)
    layers = [Layer((f'conv{k}',), f'features.{at}', 'conv') for k, at in enumerate(convs, start=1)]
    return layers + [Layer(('fc1',), f'classifier.{fc1}', 'linear', chw_channels=model.widths[-1]),
                     Layer(('fc2',), f'classifier.{fc2}', 'linear'),
                     Layer(('head',), f'classifier.{head}', 'linear', head=True)]


def _basic_conv(flax_path: tuple[str, ...], torch_name: str) -> list[Layer]:
    """torchvision's ``BasicConv2d``: a bias-free ``conv`` and its ``bn``."""
    return [Layer((*flax_path, 'conv'), f'{torch_name}.conv', 'conv', bias=False),
            Layer((*flax_path, 'bn'), f'{torch_name}.bn', 'bn')]


def googlenet_key_map(model: flax_googlenet.GoogLeNet) -> list[Layer]:
    layers = []
    for name in ('conv1', 'conv2', 'conv3') if model.stem == 'imagenet' else ('conv1',):
        layers += _basic_conv((name,), name)
    branch3 = len(flax_googlenet.BRANCH3[model.branch3]) + 1  # the reduce and its kernels
    for name, widths in model.layout:
        if isinstance(widths, int):  # a max-pool
            continue
        sequences = [('branch2', 0), ('branch2', 1), *(('branch3', i) for i in range(branch3)), ('branch4', 1)]
        layers += _basic_conv((name, 'branch1'), f'{name}.branch1')
        for branch, i in sequences:
            layers += _basic_conv((name, f'{branch}_{i}'), f'{name}.{branch}.{i}')
    if model.aux_logits:
        for k in range(1, len(model.aux_after) + 1):
            aux = f'aux{k}'
            # fc1 reads the 4x4 map of the head's 128-channel convolution.
            layers += [*_basic_conv((aux, 'conv'), f'{aux}.conv'),
                       Layer((aux, 'fc1'), f'{aux}.fc1', 'linear', chw_channels=128),
                       Layer((aux, 'fc2'), f'{aux}.fc2', 'linear', head=True)]
    return layers + [Layer(('fc',), 'fc', 'linear', head=True)]


def inception_conv_names(branch: flax_inception.Branch) -> tuple[list[str], list[str]]:
    """The names of a branch's convolutions in sequence, and of its split pair (InceptionE)."""
    if len(branch.convs) == 1 and branch.split is None:
        return [branch.name], []
    sequence = [f'{branch.name}_{i}' for i in range(1, len(branch.convs) + 1)]
    k = len(branch.convs) + 1
    return sequence, [f'{branch.name}_{k}{side}' for side in 'ab'] if branch.split is not None else []


def inception_v3_key_map(model: flax_inception.InceptionV3) -> list[Layer]:
    layers = []
    for entry in flax_inception.STEMS[model.stem]:
        if entry != 'maxpool':
            layers += _basic_conv((entry[0],), entry[0])
    for name, branches in model.mixed:
        for branch in branches:
            sequence, split = inception_conv_names(branch)
            for conv_name in sequence + split:
                layers += _basic_conv((name, conv_name), f'{name}.{conv_name}')
        if model.aux_logits and name == model.aux_after:
            layers += [*_basic_conv(('AuxLogits', 'conv0'), 'AuxLogits.conv0'),
                       *_basic_conv(('AuxLogits', 'conv1'), 'AuxLogits.conv1'),
                       Layer(('AuxLogits', 'fc'), 'AuxLogits.fc', 'linear', head=True)]
    return layers + [Layer(('fc',), 'fc', 'linear', head=True)]


# flax Module class -> key map. Adding a family: its function above and one entry here.
KEY_MAPS: dict[type, Callable[[Any], list[Layer]]] = {  # each function takes its own class
    ResNet: resnet_key_map,
    VGG: vgg_key_map,
    flax_alexnet.AlexNet: alexnet_key_map,
    flax_googlenet.GoogLeNet: googlenet_key_map,
    flax_inception.InceptionV3: inception_v3_key_map,
}


def template_size(model) -> int:
    """An input size (pixels) at which the unbound ``model`` builds all its variables; the converters
    trace it there (shapes only) to learn the shapes a ``state_dict`` must have."""
    if isinstance(model, flax_inception.InceptionV3) and model.stem == 'imagenet':
        return 299  # its auxiliary head needs the 17x17 map; see cnnzoo.models.inception
    return 32


def key_map(model) -> list[Layer]:
    """The key map of the (unbound) cnnzoo module ``model``; a one-line error for other families."""
    for cls, make in KEY_MAPS.items():
        if isinstance(model, cls):
            return make(model)
    known = ', '.join(cls.__name__ for cls in KEY_MAPS)
    raise ValueError(f'no PyTorch key map for {type(model).__name__} models; families with one: {known}')
