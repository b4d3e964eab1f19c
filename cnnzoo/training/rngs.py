"""Where a run's random numbers come from: streams of its seed, told apart by ``fold_in``.

A run stores no random state: every draw is a function of the seed and a position, so a resumed
run draws exactly what the uninterrupted one did. The seed's key, ``PRNGKey(seed)``, is folded with

- 0 for the initialisation (:func:`init_key`);
- 1 for the per-step randomness (:func:`step_stream`): step ``s`` draws from ``fold_in(stream, s)``,
  split into augmentation and dropout keys by :func:`cnnzoo.training.steps.step_keys`;
- 2 for the data order (:func:`cnnzoo.data.epoch_permutation`, which folds in the epoch);
- 3 for the fixed augmented copies of ``data.augment_mode='expand'``.
"""

from __future__ import annotations

import jax


def init_key(seed: int):
    """The key of a run's initialisation."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), 0)


def step_stream(seed: int):
    """The key of a run's per-step randomness; step ``s`` draws from ``fold_in(step_stream(seed), s)``."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), 1)
