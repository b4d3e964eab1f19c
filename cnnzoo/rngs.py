"""Where a run's random numbers come from: the streams of its seed, the one table of them.

A run stores no random state: every draw is a function of the seed and a position, so a resumed run
draws exactly what the uninterrupted one did. Each use of randomness has its own stream, a number
folded into the seed's key (JAX) or mixed with the seed (numpy, for grain's host-side workers):

===  ==========  ===============================================================================
 0   INIT        the initialisation (:func:`init_key`)
 1   STEP        the per-step randomness: step ``s`` draws from ``fold_in(step_stream(seed), s)``,
                 split into augmentation and dropout keys (cnnzoo.training.steps.step_keys)
 2   ORDER       the data order: each epoch's permutation of a set held on the device
                 (cnnzoo.data.pipeline.epoch_permutation folds in the epoch), and grain's shuffle of
                 a streamed set (:func:`stream_seed`)
 3   EXPAND      the fixed augmented copies of ``data.augment_mode='expand'``
 4   HOST_AUGMENT  a streamed set's augmentation on the host (grain's random_map: the ImageNet crops)
===  ==========  ===============================================================================

A new use of randomness takes the next number here. JAX is imported inside the functions: the data
and training layers both read this table, and neither may start JAX on import.
"""

from __future__ import annotations

INIT, STEP, ORDER, EXPAND, HOST_AUGMENT = 0, 1, 2, 3, 4


def stream_key(seed: int, stream: int):
    """The JAX key of ``stream`` of ``seed``: ``fold_in(PRNGKey(seed), stream)``."""
    import jax

    return jax.random.fold_in(jax.random.PRNGKey(seed), stream)


def init_key(seed: int):
    """The key of a run's initialisation."""
    return stream_key(seed, INIT)


def step_stream(seed: int):
    """The key of a run's per-step randomness; step ``s`` draws from ``fold_in(step_stream(seed), s)``."""
    return stream_key(seed, STEP)


def stream_seed(seed: int, stream: int) -> int:
    """A 32-bit integer seed of ``stream`` of ``seed``, for grain (numpy's SeedSequence)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])
