"""optax optimizers from ``config.optimizer``; weight decay through optax with a mask.

Conventions, stated because they decide whether a recipe ports between frameworks:

- ``sgd``: ``add_decayed_weights`` before ``sgd(momentum, nesterov)``. The decay is added to the
  gradient before momentum, and the momentum buffer is ``m * buf + g``: this is exactly PyTorch's
  ``torch.optim.SGD(weight_decay=..., momentum=..., nesterov=...)`` (dampening 0).
- ``adam``: decay added to the gradient before Adam (PyTorch's ``Adam(weight_decay=...)``, L2).
- ``adamw``: decoupled decay, ``p -= lr * wd * p`` (Loshchilov & Hutter; PyTorch's ``AdamW``).

``decay_bn_and_bias`` chooses whether rank-1 parameters (BatchNorm scales/offsets, biases) decay.
"""

from __future__ import annotations

import jax
import optax


def decay_mask(params, decay_bn_and_bias: bool):
    """True for the leaves that weight decay applies to: kernels, and 1-D leaves if asked."""
    return jax.tree_util.tree_map(lambda p: decay_bn_and_bias or p.ndim > 1, params)


def make_optimizer(opt_config, learning_rate) -> optax.GradientTransformation:
    """``learning_rate`` is a float or an optax schedule of the step."""
    c = opt_config
    mask = lambda params: decay_mask(params, c.decay_bn_and_bias)  # noqa: E731
    if c.name == 'sgd':
        return optax.chain(
            optax.add_decayed_weights(c.weight_decay, mask=mask),
            optax.sgd(learning_rate, momentum=c.momentum or None, nesterov=c.nesterov),
        )
    if c.name == 'adam':
        return optax.chain(
            optax.add_decayed_weights(c.weight_decay, mask=mask),
            optax.adam(learning_rate, b1=c.b1, b2=c.b2, eps=c.eps),
        )
    if c.name == 'adamw':
        return optax.adamw(learning_rate, b1=c.b1, b2=c.b2, eps=c.eps,
                           weight_decay=c.weight_decay, mask=mask)
    raise ValueError(f'unknown optimizer {c.name!r}; choose sgd, adam or adamw')
