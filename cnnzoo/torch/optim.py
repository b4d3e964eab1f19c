"""The ``torch.optim`` optimizer equal to cnnzoo's ``make_optimizer`` for the same config section,
keyed by the names of :data:`cnnzoo.training.optimizers.OPTIMIZERS`.

With equal weights and gradients, three steps of each give the same parameters
(tests/test_torch_parity.py): ``sgd`` is ``torch.optim.SGD`` (dampening 0; momentum 0 is plain
SGD), ``adam`` is ``torch.optim.Adam`` (L2 decay added to the gradient), ``adamw`` is
``torch.optim.AdamW`` (decoupled decay), ``rmsprop`` is ``torch.optim.RMSprop`` (``alpha`` =
``optimizer.rms_decay``, eps outside the root, momentum of the scaled gradient: the JAX side is
composed to match it, see :mod:`cnnzoo.training.optimizers`). ``decay_bn_and_bias=False`` becomes
two parameter groups, as cnnzoo's mask: tensors of rank <= 1 get no decay.

``lars`` and ``lamb`` are registered with no optimizer and the reason: ``torch.optim`` has neither
(NVIDIA's apex and timm have their own, with their own conventions), so :func:`make_torch_optimizer`
refuses them in one line, and the parity test lists them as having no twin.
"""

from __future__ import annotations

import torch

from cnnzoo.errors import ConfigError
from cnnzoo.registry import Registry
from cnnzoo.training.optimizers import OPTIMIZERS

TORCH_OPTIMIZERS = Registry('PyTorch optimizer', 'optimizer.name')


def param_groups(module: torch.nn.Module, weight_decay: float, decay_bn_and_bias: bool) -> list[dict]:
    params = [p for p in module.parameters() if p.requires_grad]
    if decay_bn_and_bias:
        return [{'params': params, 'weight_decay': weight_decay}]
    return [{'params': [p for p in params if p.ndim > 1], 'weight_decay': weight_decay},
            {'params': [p for p in params if p.ndim <= 1], 'weight_decay': 0.0}]


@TORCH_OPTIMIZERS.register('sgd')
def sgd(c, groups, learning_rate):
    """torch.optim.SGD (dampening 0)"""
    return torch.optim.SGD(groups, lr=learning_rate, momentum=c.momentum, nesterov=c.nesterov)


@TORCH_OPTIMIZERS.register('adam')
def adam(c, groups, learning_rate):
    """torch.optim.Adam (L2 decay)"""
    return torch.optim.Adam(groups, lr=learning_rate, betas=(c.b1, c.b2), eps=c.eps)


@TORCH_OPTIMIZERS.register('adamw')
def adamw(c, groups, learning_rate):
    """torch.optim.AdamW (decoupled decay)"""
    return torch.optim.AdamW(groups, lr=learning_rate, betas=(c.b1, c.b2), eps=c.eps)


@TORCH_OPTIMIZERS.register('rmsprop')
def rmsprop(c, groups, learning_rate):
    """torch.optim.RMSprop (alpha = optimizer.rms_decay)"""
    return torch.optim.RMSprop(groups, lr=learning_rate, alpha=c.rms_decay, eps=c.eps, momentum=c.momentum,
                               centered=c.centered)


TORCH_OPTIMIZERS.add('lars', None, help='torch.optim has no LARS (You et al. 2017); apex and timm have their own')
TORCH_OPTIMIZERS.add('lamb', None, help='torch.optim has no LAMB (You et al. 2020); apex and timm have their own')


def torch_optimizer(name: str):
    """The function building the twin of optimizer ``name``; a one-line ConfigError for an unknown
    name (the schema's) or for one without a PyTorch twin (saying why)."""
    OPTIMIZERS.get(name)
    entry = TORCH_OPTIMIZERS.get(name)
    if entry.value is None:
        raise ConfigError(f'config.optimizer.name={name!r} has no PyTorch twin: {entry.help}')
    return entry.value


def make_torch_optimizer(opt_config, module: torch.nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """``opt_config`` is ``config.optimizer`` of a cnnzoo config; ``learning_rate`` a float."""
    c = opt_config
    return torch_optimizer(c.name)(c, param_groups(module, c.weight_decay, c.decay_bn_and_bias), learning_rate)
