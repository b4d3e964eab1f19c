"""Optimizers by name (``config.optimizer.name``): optax transformations, weight decay through optax
with a mask.

Each optimizer is a function ``(opt_config, learning_rate, mask) -> optax.GradientTransformation``
registered in :data:`OPTIMIZERS` with the ``optimizer.*`` keys it reads (``learning_rate`` is a
float or an optax schedule of the step; ``mask`` says which parameters decay). Conventions, stated
because they decide whether a recipe ports between frameworks (the PyTorch twin of each is in
:mod:`cnnzoo.torch.optim`, and tests/test_torch_parity.py checks one step of each against it):

- ``sgd``: ``add_decayed_weights`` before ``sgd(momentum, nesterov)``. The decay is added to the
  gradient before momentum, and the momentum buffer is ``m * buf + g``: this is exactly PyTorch's
  ``torch.optim.SGD(weight_decay=..., momentum=..., nesterov=...)`` (dampening 0).
- ``adam``: decay added to the gradient before Adam (PyTorch's ``Adam(weight_decay=...)``, L2).
- ``adamw``: decoupled decay, ``p -= lr * wd * p`` (Loshchilov & Hutter; PyTorch's ``AdamW``).

``decay_bn_and_bias`` chooses whether rank-1 parameters (BatchNorm scales/offsets, biases) decay.
optax is imported inside the functions: ``cnnzoo train --help`` reads this registry without JAX.
"""

from __future__ import annotations

from cnnzoo.registry import Registry

OPTIMIZERS = Registry('optimizer', 'optimizer.name')

# What every optimizer reads besides its own keys.
COMMON = ('optimizer.learning_rate', 'optimizer.weight_decay', 'optimizer.decay_bn_and_bias')


@OPTIMIZERS.register('sgd', params=(*COMMON, 'optimizer.momentum', 'optimizer.nesterov'))
def sgd(c, learning_rate, mask):
    """SGD with momentum (0: none) and optional Nesterov; L2 decay added to the gradient (torch.optim.SGD)"""
    import optax

    return optax.chain(optax.add_decayed_weights(c.weight_decay, mask=mask),
                       optax.sgd(learning_rate, momentum=c.momentum or None, nesterov=c.nesterov))


@OPTIMIZERS.register('adam', params=(*COMMON, 'optimizer.b1', 'optimizer.b2', 'optimizer.eps'))
def adam(c, learning_rate, mask):
    """Adam (Kingma & Ba 2015); L2 decay added to the gradient (torch.optim.Adam)"""
    import optax

    return optax.chain(optax.add_decayed_weights(c.weight_decay, mask=mask),
                       optax.adam(learning_rate, b1=c.b1, b2=c.b2, eps=c.eps))


@OPTIMIZERS.register('adamw', params=(*COMMON, 'optimizer.b1', 'optimizer.b2', 'optimizer.eps'))
def adamw(c, learning_rate, mask):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019; torch.optim.AdamW)"""
    import optax

    return optax.adamw(learning_rate, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay, mask=mask)


def decay_mask(params, decay_bn_and_bias: bool):
    """True for the leaves that weight decay applies to: kernels, and 1-D leaves if asked."""
    import jax

    return jax.tree_util.tree_map(lambda p: decay_bn_and_bias or p.ndim > 1, params)


def make_optimizer(opt_config, learning_rate):
    """The optax transformation ``opt_config.name`` names (``opt_config``: ``config.optimizer``);
    ``learning_rate`` is a float or an optax schedule of the step."""
    mask = lambda params: decay_mask(params, opt_config.decay_bn_and_bias)  # noqa: E731
    return OPTIMIZERS[opt_config.name](opt_config, learning_rate, mask)
