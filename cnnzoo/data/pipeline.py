"""Batches from device-resident arrays: each epoch's order from ``(seed, epoch)``, gathers inside jit."""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from cnnzoo.data.augmentation import expansion

# The data order draws from its own stream of the run's seed (cnnzoo.training.rngs lists them all).
_ORDER_STREAM = 2
# The fixed augmented copies of augment_mode='expand' draw from a fourth.
_EXPAND_STREAM = 3


@partial(jax.jit, static_argnums=(0, 2))
def epoch_permutation(seed: int, epoch, n: int):
    """The order of the ``n`` training examples in ``epoch``: a function of ``(seed, epoch)`` only."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), _ORDER_STREAM), epoch)
    return jax.random.permutation(key, n).astype(jnp.int32)


def take_batch(images, labels, perm, index, batch_size: int):
    """Batch ``index`` of an epoch whose order is ``perm``; jit-able, no trip through the host."""
    idx = jax.lax.dynamic_slice_in_dim(perm, index * batch_size, batch_size)
    return {'image': jnp.take(images, idx, axis=0), 'label': jnp.take(labels, idx, axis=0)}


def expand_dataset(dataset, preset: str, seed: int):
    """``dataset`` with its training set expanded by ``preset`` (``augment.expansion``) from ``seed``.

    The labels repeat with the images; ``mean``/``std`` stay those of the originals, and the held-out
    split is untouched.
    """
    key = jax.random.fold_in(jax.random.PRNGKey(seed), _EXPAND_STREAM)
    images = expansion(key, dataset.train_images, preset, mean=dataset.mean)
    labels = np.tile(dataset.train_labels, len(images) // len(dataset.train_labels))
    return dataclasses.replace(dataset, train_images=images, train_labels=labels)


def online_preset(data_config) -> str:
    """The preset the train step applies: ``data.augment``, or 'none' once ``'expand'`` has applied it."""
    return 'none' if data_config.augment_mode == 'expand' else data_config.augment
