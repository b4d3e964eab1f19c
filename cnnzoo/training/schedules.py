"""Learning-rate schedules as optax schedules of the step count.

- :func:`piecewise_constant`: the base rate multiplied by ``decay_factor`` at each boundary.
  He et al. (2016, §4.2): 0.1, divided by 10 at 32k and 48k iterations, stopped at 64k.
- :func:`piecewise_by_ratio`: the run cut into phases in the proportions of a ratio string;
  phase i runs at ``base * decay_factor**i``. ``'2:1:1'`` is He et al.'s schedule (32k/48k of 64k);
  ``'5:3:2'`` at base 0.1 gives 0.1 for the first half, 0.01 for the next 30%, 0.001 for the rest.
- :func:`cosine`: cosine decay from base to ``base * final_fraction``.
- :func:`with_warmup`: a linear ramp from 0 to the schedule's value over the first steps.

Durations arrive here already in steps: :func:`steps_from_epochs` is the one place where epochs
from a config become steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax.numpy as jnp
import optax


def steps_from_epochs(epochs: float, steps_per_epoch: int) -> int:
    """The one conversion from epochs (config unit) to optimizer steps, rounded to nearest."""
    return int(round(epochs * steps_per_epoch))


def piecewise_constant(base: float, boundaries: Sequence[int], decay_factor: float = 0.1):
    """``base`` until ``boundaries[0]``, then ``base * decay_factor``, and so on.

    The rate changes *at* a boundary: step ``boundaries[0]`` already uses the decayed rate.
    """
    boundaries = [int(b) for b in boundaries]
    if any(b < 0 for b in boundaries) or boundaries != sorted(boundaries):
        raise ValueError(f'schedule boundaries must be non-negative and increasing, got {boundaries}')
    marks = jnp.asarray(boundaries, jnp.int32)

    def schedule(step):
        # Phases may be empty (two equal boundaries), as a ratio gives on a very short run.
        passed = jnp.sum(jnp.asarray(step) >= marks) if boundaries else 0
        return base * jnp.asarray(decay_factor, jnp.float32) ** passed

    return schedule


def parse_ratio(ratio: str) -> tuple[float, ...]:
    """``'5:3:2'`` -> ``(5.0, 3.0, 2.0)``; a one-line ValueError for anything else."""
    try:
        parts = tuple(float(p) for p in ratio.split(':'))
    except ValueError:
        parts = ()
    if not parts or any(not math.isfinite(p) or p <= 0 for p in parts):
        raise ValueError(f"schedule ratio must look like '5:3:2' (positive numbers), got {ratio!r}")
    return parts


def ratio_boundaries(ratio: str, total_steps: int) -> list[int]:
    """Step boundaries that cut ``total_steps`` in the proportions of ``ratio``."""
    parts = parse_ratio(ratio)
    total = sum(parts)
    cumulative = 0.0
    boundaries = []
    for p in parts[:-1]:
        cumulative += p
        boundaries.append(int(round(total_steps * cumulative / total)))
    return boundaries


def piecewise_by_ratio(base: float, ratio: str, total_steps: int, decay_factor: float = 0.1):
    """Phases in the proportions of ``ratio``; phase i at ``base * decay_factor**i``."""
    return piecewise_constant(base, ratio_boundaries(ratio, total_steps), decay_factor)


def cosine(base: float, total_steps: int, final_fraction: float = 0.0):
    return optax.cosine_decay_schedule(base, max(total_steps, 1), alpha=final_fraction)


def with_warmup(schedule, warmup_steps: int):
    """Linear warm-up from 0 to ``schedule(warmup_steps)``, then ``schedule`` itself."""
    if warmup_steps <= 0:
        return schedule

    def warmed(step):
        ramp = jnp.minimum(1.0, (step + 1) / warmup_steps)
        return jnp.where(step < warmup_steps, ramp * schedule(warmup_steps), schedule(step))

    return warmed


def make_schedule(config, *, steps_per_epoch: int, total_steps: int):
    """The schedule named by ``config.schedule`` with base ``config.optimizer.learning_rate``."""
    s = config.schedule
    base = config.optimizer.learning_rate
    if s.name == 'constant':
        schedule = optax.constant_schedule(base)
    elif s.name == 'piecewise':
        boundaries = [steps_from_epochs(e, steps_per_epoch) for e in s.boundaries_epochs]
        schedule = piecewise_constant(base, boundaries, s.decay_factor)
    elif s.name == 'ratio':
        schedule = piecewise_by_ratio(base, s.ratio, total_steps, s.decay_factor)
    elif s.name == 'cosine':
        warmup = steps_from_epochs(s.warmup_epochs, steps_per_epoch)
        decay = cosine(base, total_steps - warmup, s.final_fraction)
        return with_warmup(lambda step: decay(jnp.maximum(step - warmup, 0)), warmup)
    else:
        raise ValueError(f'unknown schedule {s.name!r}')
    return with_warmup(schedule, steps_from_epochs(s.warmup_epochs, steps_per_epoch))
