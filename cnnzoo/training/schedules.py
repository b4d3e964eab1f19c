"""Learning-rate schedules by name (``config.schedule.name``), as functions of the step count.

- :func:`piecewise_constant`: the base rate multiplied by ``decay_factor`` at each boundary.
  He et al. (2016, §4.2): 0.1, divided by 10 at 32k and 48k iterations, stopped at 64k.
- :func:`piecewise_by_ratio`: the run cut into phases in the proportions of a ratio string;
  phase i runs at ``base * decay_factor**i``. ``'2:1:1'`` is He et al.'s schedule (32k/48k of 64k);
  ``'5:3:2'`` at base 0.1 gives 0.1 for the first half, 0.01 for the next 30%, 0.001 for the rest.
- :func:`cosine`: cosine decay from base to ``base * final_fraction``.
- :func:`with_warmup`: a linear ramp from 0 to the schedule's value over the first steps.

Each named schedule is registered in :data:`SCHEDULES` with the config keys it reads; every one of
them starts with the linear warm-up of ``schedule.warmup_epochs`` (cosine decays over the steps
after it, the others ramp up to their own value at its end). :func:`check_schedule` is the one check
of a schedule section, run with the config's (:func:`cnnzoo.config.validate`).

Durations arrive here already in steps: :func:`steps_from_epochs` is the one place where epochs
from a config become steps. jax.numpy and optax are imported inside the functions: ``cnnzoo train
--help`` reads this registry without starting JAX.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from cnnzoo.errors import ConfigError
from cnnzoo.registry import Registry

SCHEDULES = Registry('schedule', 'schedule.name')
# What every schedule reads besides its own keys.
COMMON = ('optimizer.learning_rate', 'schedule.warmup_epochs')


def steps_from_epochs(epochs: float, steps_per_epoch: int) -> int:
    """The one conversion from epochs (config unit) to optimizer steps, rounded to nearest."""
    return int(round(epochs * steps_per_epoch))


def piecewise_constant(base: float, boundaries: Sequence[int], decay_factor: float = 0.1):
    """``base`` until ``boundaries[0]``, then ``base * decay_factor``, and so on.

    The rate changes *at* a boundary: step ``boundaries[0]`` already uses the decayed rate.
    """
    import jax.numpy as jnp

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
    """Cosine decay from ``base`` to ``base * final_fraction`` over ``total_steps`` (optax's)."""
    import optax

    return optax.cosine_decay_schedule(base, max(total_steps, 1), alpha=final_fraction)


def with_warmup(schedule, warmup_steps: int):
    """Linear warm-up from 0 to ``schedule(warmup_steps)``, then ``schedule`` itself."""
    if warmup_steps <= 0:
        return schedule
    import jax.numpy as jnp

    def warmed(step):
        ramp = jnp.minimum(1.0, (step + 1) / warmup_steps)
        return jnp.where(step < warmup_steps, ramp * schedule(warmup_steps), schedule(step))

    return warmed


@SCHEDULES.register('constant', params=COMMON)
def constant(config, *, steps_per_epoch: int, total_steps: int, warmup_steps: int):
    """the base rate throughout"""
    import optax

    return with_warmup(optax.constant_schedule(config.optimizer.learning_rate), warmup_steps)


@SCHEDULES.register('piecewise', params=(*COMMON, 'schedule.boundaries_epochs', 'schedule.decay_factor'))
def piecewise(config, *, steps_per_epoch: int, total_steps: int, warmup_steps: int):
    """the base rate multiplied by decay_factor at each of boundaries_epochs"""
    s = config.schedule
    boundaries = [steps_from_epochs(e, steps_per_epoch) for e in s.boundaries_epochs]
    return with_warmup(piecewise_constant(config.optimizer.learning_rate, boundaries, s.decay_factor), warmup_steps)


@SCHEDULES.register('ratio', params=(*COMMON, 'schedule.ratio', 'schedule.decay_factor'))
def ratio(config, *, steps_per_epoch: int, total_steps: int, warmup_steps: int):
    """phases in the proportions of schedule.ratio, each decay_factor times the one before (He et al.: 2:1:1)"""
    s = config.schedule
    return with_warmup(piecewise_by_ratio(config.optimizer.learning_rate, s.ratio, total_steps, s.decay_factor),
                       warmup_steps)


@SCHEDULES.register('cosine', params=(*COMMON, 'schedule.final_fraction'))
def cosine_after_warmup(config, *, steps_per_epoch: int, total_steps: int, warmup_steps: int):
    """cosine decay from the base rate to base * final_fraction over the steps after the warm-up"""
    import jax.numpy as jnp

    decay = cosine(config.optimizer.learning_rate, total_steps - warmup_steps, config.schedule.final_fraction)
    return with_warmup(lambda step: decay(jnp.maximum(step - warmup_steps, 0)), warmup_steps)


def make_schedule(config, *, steps_per_epoch: int, total_steps: int):
    """The schedule named by ``config.schedule`` with base ``config.optimizer.learning_rate``."""
    return SCHEDULES[config.schedule.name](config, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                                           warmup_steps=steps_from_epochs(config.schedule.warmup_epochs,
                                                                          steps_per_epoch))


def check_schedule(schedule_config) -> None:
    """A one-line ConfigError for a schedule section's bad values (both forms are checked whichever
    schedule is named: a bad value is bad anyway)."""
    s = schedule_config
    try:
        parse_ratio(s.ratio)
    except ValueError as e:
        raise ConfigError(f'config.schedule.ratio={s.ratio!r}: {e}') from None
    b = list(s.boundaries_epochs)
    if any(not isinstance(x, (int, float)) or x < 0 for x in b) or b != sorted(b):
        raise ConfigError(f'config.schedule.boundaries_epochs={tuple(b)!r}: '
                          'must be non-negative epochs in increasing order, e.g. (100, 150)')
