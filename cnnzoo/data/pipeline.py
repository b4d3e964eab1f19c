"""Batches from device-resident arrays: each epoch's order from ``(seed, epoch)``, gathers inside jit."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

# The data order draws from its own stream of the run's seed (the loop folds 0 in for the
# initialisation and 1 for the per-step randomness).
_ORDER_STREAM = 2


@partial(jax.jit, static_argnums=(0, 2))
def epoch_permutation(seed: int, epoch, n: int):
    """The order of the ``n`` training examples in ``epoch``: a function of ``(seed, epoch)`` only."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), _ORDER_STREAM), epoch)
    return jax.random.permutation(key, n).astype(jnp.int32)


def take_batch(images, labels, perm, index, batch_size: int):
    """Batch ``index`` of an epoch whose order is ``perm``; jit-able, no trip through the host."""
    idx = jax.lax.dynamic_slice_in_dim(perm, index * batch_size, batch_size)
    return {'image': jnp.take(images, idx, axis=0), 'label': jnp.take(labels, idx, axis=0)}
