"""The functional training core: TrainState, pure train/eval steps, optimizers and schedules."""

from cnnzoo.training.optimizers import decay_mask, make_optimizer
from cnnzoo.training.rngs import init_key, step_stream
from cnnzoo.training.schedules import (cosine, make_schedule, parse_ratio, piecewise_by_ratio, piecewise_constant,
                                       ratio_boundaries, steps_from_epochs, with_warmup)
from cnnzoo.training.steps import (AUX_COLLECTION, TrainState, aux_loss, cross_entropy, init_variables, make_eval_step,
                                   make_train_step, over_replicas, per_replica, replica, replica_axes,
                                   replica_count, stack_replicas)

__all__ = [
    'AUX_COLLECTION', 'TrainState', 'aux_loss', 'cosine', 'cross_entropy', 'decay_mask', 'init_key',
    'init_variables', 'make_eval_step', 'make_optimizer', 'make_schedule', 'make_train_step', 'over_replicas',
    'parse_ratio', 'per_replica', 'piecewise_by_ratio', 'piecewise_constant', 'ratio_boundaries', 'replica',
    'replica_axes', 'replica_count', 'stack_replicas', 'step_stream', 'steps_from_epochs', 'with_warmup',
]
