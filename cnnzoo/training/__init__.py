"""The functional training core: TrainState, pure train/eval steps, criteria, optimizers, schedules
and compute dtypes (each chosen by name through its registry), the seed's random streams, the map
over replicas (seeds).

The names below are imported from their modules on first use (PEP 562), so that importing a
registry (:mod:`cnnzoo.training.losses`, ``optimizers``, ``schedules``, ``dtypes``, read by ``cnnzoo
train --help``) does not start JAX.
"""

import importlib

_EXPORTS = {
    'LOSSES': 'losses', 'cross_entropy': 'losses', 'make_loss': 'losses',
    'OPTIMIZERS': 'optimizers', 'decay_mask': 'optimizers', 'make_optimizer': 'optimizers',
    'SCHEDULES': 'schedules', 'cosine': 'schedules', 'make_schedule': 'schedules', 'parse_ratio': 'schedules',
    'piecewise_by_ratio': 'schedules', 'piecewise_constant': 'schedules', 'ratio_boundaries': 'schedules',
    'steps_from_epochs': 'schedules', 'with_warmup': 'schedules',
    'DTYPES': 'dtypes', 'compute_dtype': 'dtypes',
    'AUX_COLLECTION': 'steps', 'TrainState': 'steps', 'aux_loss': 'steps', 'init_variables': 'steps',
    'make_eval_step': 'steps', 'make_train_step': 'steps',
    'in_sequence': 'replicas', 'over_replicas': 'replicas', 'replica': 'replicas', 'replica_axes': 'replicas',
    'replica_count': 'replicas', 'stack_replicas': 'replicas',
}
__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - made from the lazy table, so the two cannot drift


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
