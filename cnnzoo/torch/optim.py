"""The ``torch.optim`` optimizer equal to cnnzoo's ``make_optimizer`` for the same config section.

With equal weights and gradients, one step of each gives the same parameters (tests/test_torch_parity.py):
``sgd`` is ``torch.optim.SGD`` (dampening 0), ``adam`` is ``torch.optim.Adam`` (L2 decay added to
the gradient), ``adamw`` is ``torch.optim.AdamW`` (decoupled decay). ``decay_bn_and_bias=False``
becomes two parameter groups, as cnnzoo's mask: tensors of rank <= 1 get no decay.
"""

from __future__ import annotations

import torch


def param_groups(module: torch.nn.Module, weight_decay: float, decay_bn_and_bias: bool) -> list[dict]:
    params = [p for p in module.parameters() if p.requires_grad]
    if decay_bn_and_bias:
        return [{'params': params, 'weight_decay': weight_decay}]
    return [{'params': [p for p in params if p.ndim > 1], 'weight_decay': weight_decay},
            {'params': [p for p in params if p.ndim <= 1], 'weight_decay': 0.0}]


def make_torch_optimizer(opt_config, module: torch.nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """``opt_config`` is ``config.optimizer`` of a cnnzoo config; ``learning_rate`` a float."""
    c = opt_config
    groups = param_groups(module, c.weight_decay, c.decay_bn_and_bias)
    if c.name == 'sgd':
        return torch.optim.SGD(groups, lr=learning_rate, momentum=c.momentum, nesterov=c.nesterov)
    if c.name == 'adam':
        return torch.optim.Adam(groups, lr=learning_rate, betas=(c.b1, c.b2), eps=c.eps)
    if c.name == 'adamw':
        return torch.optim.AdamW(groups, lr=learning_rate, betas=(c.b1, c.b2), eps=c.eps)
    raise ValueError(f'unknown optimizer {c.name!r}; choose sgd, adam or adamw')
