"""Batches from device-resident arrays: each epoch's order from ``(seed, epoch)``, gathers inside jit;
the augmentation presets applied on the device (:func:`augment`), online or once (:func:`expansion`)."""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from cnnzoo import rngs
from cnnzoo.data.augmentation import preset_keys, to_float
from cnnzoo.data.presets import AUGMENTATIONS

_EXPAND_CHUNK = 2048  # images per jitted call; fixed, because each chunk's draws fold in its index


@partial(jax.jit, static_argnums=(0, 2))
def epoch_permutation(seed: int, epoch, n: int):
    """The order of the ``n`` training examples in ``epoch``: a function of ``(seed, epoch)`` only."""
    key = jax.random.fold_in(rngs.stream_key(seed, rngs.ORDER), epoch)
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
    key = rngs.stream_key(seed, rngs.EXPAND)
    images = expansion(key, dataset.train_images, preset, mean=dataset.mean)
    labels = np.tile(dataset.train_labels, len(images) // len(dataset.train_labels))
    return dataclasses.replace(dataset, train_images=images, train_labels=labels)


def online_preset(data_config) -> str:
    """The preset the train step applies: ``data.augment``, or 'none' once ``'expand'`` has applied it."""
    return 'none' if data_config.augment_mode == 'expand' else data_config.augment


def augment(rng, images, preset: str, *, mean=(0.0, 0.0, 0.0)):
    """uint8 (B, H, W, C) -> float32 in [0, 1], augmented by ``preset`` (a name of
    :data:`cnnzoo.data.presets.AUGMENTATIONS`); deterministic in ``rng``.

    ``mean`` is the fill of ``'cutout'`` (the dataset mean, so that normalisation makes it 0).
    """
    return AUGMENTATIONS[preset](preset_keys(rng), to_float(images), mean=mean)


@partial(jax.jit, static_argnums=(2,))
def _augmented_uint8(rng, images, preset: str, mean):
    return jnp.round(augment(rng, images, preset, mean=mean) * 255.0).astype(jnp.uint8)


def expanding_presets() -> tuple[str, ...]:
    """The presets that ``augment_mode='expand'`` can apply."""
    return tuple(e.name for e in AUGMENTATIONS.entries() if 'expand' in e.meta)


def expansion(key, images: np.ndarray, preset: str, *, mean=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The originals followed by the copies of ``preset``'s ``expand`` (:mod:`cnnzoo.data.presets`), as
    uint8 (N * (1 + copies), ...).

    The "dataset expansion" form of augmentation: each copy is augmented once, with draws from
    ``fold_in(fold_in(key, copy), chunk)``, then rounded back to uint8 (exact for crops, flips and
    cutout; colour jitter and blur lose under half a grey level, as when such copies are saved as
    image files). Deterministic in ``key``: a resumed run rebuilds the same set.
    """
    copies = AUGMENTATIONS.get(preset).meta.get('expand')
    if copies is None:
        raise ValueError(f'augmentation {preset!r} does not expand a dataset; presets that do: '
                         f'{", ".join(expanding_presets())}')
    mean = jnp.asarray(mean, jnp.float32)
    parts = [np.asarray(images)]
    for c, copy_preset in enumerate(copies):
        copy_key = jax.random.fold_in(key, c)
        parts += [np.asarray(_augmented_uint8(jax.random.fold_in(copy_key, i // _EXPAND_CHUNK),
                                              images[i:i + _EXPAND_CHUNK], copy_preset, mean))
                  for i in range(0, len(images), _EXPAND_CHUNK)]
    return np.concatenate(parts)
