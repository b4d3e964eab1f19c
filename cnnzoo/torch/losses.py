"""The PyTorch twin of every criterion of :mod:`cnnzoo.training.losses`, keyed by the same names.

:data:`TORCH_LOSSES` holds, for each name of ``LOSSES``, a function ``(logits, labels, **params) ->
(B,)`` of per-example losses computing the same thing in torch, with the same keyword arguments
(bound from a config by :func:`cnnzoo.training.losses.loss_params`, so both frameworks read the same
keys). tests/test_torch_parity.py compares the loss and its gradient with respect to the logits
for every name of ``LOSSES``, so a criterion without a twin here fails there.

Where torch has the criterion, the twin calls it: ``F.cross_entropy`` (its ``label_smoothing`` is
optax's ``smooth_labels``: ``(1 - a) one_hot + a / C``) and ``F.mse_loss``. PyTorch has no softmax
focal loss (torchvision's ``sigmoid_focal_loss`` is the binary form), no Crammer-Singer hinge
(``nn.MultiMarginLoss`` is Weston & Watkins' sum over the classes, divided by their count) and no
Poly-1: those are written out here from their definitions. Computed in the logits' dtype (float32,
or float64 for the recipe's reference twin).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from cnnzoo.registry import Registry
from cnnzoo.training.losses import LOSSES, loss_params

TORCH_LOSSES = Registry('PyTorch loss', 'training.loss')


def _targets(logits, labels, label_smoothing: float = 0.0):
    targets = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    return targets * (1 - label_smoothing) + label_smoothing / logits.shape[-1] if label_smoothing else targets


@TORCH_LOSSES.register('cross_entropy')
def cross_entropy(logits, labels, *, label_smoothing: float = 0.0):
    """F.cross_entropy with label_smoothing"""
    return F.cross_entropy(logits, labels, reduction='none', label_smoothing=label_smoothing)


@TORCH_LOSSES.register('focal')
def focal(logits, labels, *, focal_gamma: float = 2.0):
    """-(1 - p_y)^gamma log p_y, log(1 - p_y) from the other classes' log-sum-exp (as the JAX form)"""
    total = torch.logsumexp(logits, dim=-1)
    label = F.one_hot(labels, logits.shape[-1]).bool()
    log_p = logits.gather(-1, labels[:, None])[:, 0] - total
    log_q = torch.logsumexp(logits.masked_fill(label, float('-inf')), dim=-1) - total
    return -torch.exp(focal_gamma * log_q) * log_p


@TORCH_LOSSES.register('squared_error')
def squared_error(logits, labels):
    """F.mse_loss of the logits against one-hot targets, averaged over the classes"""
    return F.mse_loss(logits, _targets(logits, labels), reduction='none').mean(dim=-1)


@TORCH_LOSSES.register('hinge')
def hinge(logits, labels):
    """Crammer & Singer: max_j (s_j + [j != y]) - s_y (amax: ties share the gradient, as jnp.max)"""
    margins = logits + 1.0 - F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    return margins.amax(dim=-1) - logits.gather(-1, labels[:, None])[:, 0]


@TORCH_LOSSES.register('poly1')
def poly1(logits, labels, *, label_smoothing: float = 0.0, poly1_epsilon: float = 1.0):
    """F.cross_entropy + epsilon * (1 - p_y), p_y against the (smoothed) targets"""
    targets = _targets(logits, labels, label_smoothing)
    p_target = (targets * torch.softmax(logits, dim=-1)).sum(dim=-1)
    return cross_entropy(logits, labels, label_smoothing=label_smoothing) + poly1_epsilon * (1 - p_target)


def make_torch_loss(config, *, evaluation: bool = False) -> Callable:
    """``loss(logits, labels) -> (B,)``: the twin of :func:`cnnzoo.training.losses.make_loss` for the
    same config (the criterion ``config.training.loss``, label smoothing left out for ``evaluation``)."""
    LOSSES.get(config.training.loss)  # an unknown name: the schema's one-line error
    fn, params = TORCH_LOSSES[config.training.loss], loss_params(config, evaluation=evaluation)
    return lambda logits, labels: fn(logits, labels, **params)
