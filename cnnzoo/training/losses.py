"""Criteria by name (``config.training.loss``): per-example losses of ``(logits, integer labels)``.

Each criterion is a function ``loss(logits, labels, **params) -> (B,)`` registered in :data:`LOSSES`
with the config keys it reads; its keyword arguments are named by the last part of those keys
(``training.label_smoothing`` -> ``label_smoothing``). :func:`make_loss` binds them from a config.
The train step averages the per-example losses over the batch, and adds each auxiliary head's mean
loss (GoogLeNet, Inception v3) with the head's weight, with the same criterion
(:mod:`cnnzoo.training.steps`). An evaluation records the run's criterion without label smoothing,
a regulariser of training only.

Logits are cast to float32 before any loss, whatever the compute dtype. JAX and optax are imported
inside the functions: ``cnnzoo train --help`` reads this registry and must not start JAX.
"""

from __future__ import annotations

from collections.abc import Callable

from cnnzoo.registry import Registry

LOSSES = Registry('loss', 'training.loss')


@LOSSES.register('cross_entropy', params=('training.label_smoothing',))
def cross_entropy(logits, labels, *, label_smoothing: float = 0.0):
    """softmax cross-entropy, with label smoothing (Szegedy et al. 2016) when training.label_smoothing > 0"""
    import jax
    import jax.numpy as jnp
    import optax

    targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def config_value(config, key: str):
    """The value of a dotted ``key`` ('training.label_smoothing') in ``config``."""
    node = config
    for part in key.split('.'):
        node = node[part]
    return node


def make_loss(config, *, evaluation: bool = False) -> Callable:
    """``loss(logits, labels) -> (B,)``: the criterion ``config.training.loss`` with its parameters
    from ``config``; ``evaluation=True`` leaves label smoothing out."""
    entry = LOSSES.get(config.training.loss)
    params = {}
    for key in entry.params:
        name = key.rpartition('.')[2]
        params[name] = 0.0 if evaluation and name == 'label_smoothing' else config_value(config, key)
    fn = entry.value
    return lambda logits, labels: fn(logits, labels, **params)
