"""Restore a run's checkpoint and measure its accuracy on the test set."""

from __future__ import annotations

import os

from cnnzoo import config as config_lib
from cnnzoo.checkpoints import Checkpoints
from cnnzoo.loop import build, make_evaluator
from cnnzoo.validation import check_config
from cnnzoo.workdir import RunError, has_checkpoint


def evaluate_checkpoint(workdir: str, *, which: str | int = 'best', overrides=()) -> dict:
    """Test-set loss and accuracy of checkpoint ``which`` ('best', 'latest' or a step) of a run.

    The run's ``config.json`` rebuilds the model and data; ``overrides`` (``(key, value)`` pairs as
    on the command line) can point at the data elsewhere. Always evaluates on the official test
    split, even when the run held out a validation split for its own evaluations.
    """
    path = os.path.join(workdir, 'config.json')
    if not os.path.exists(path):
        raise RunError(f'{workdir} holds no training run (no config.json)')
    with open(path) as f:
        config = config_lib.from_json(f.read())
    config_lib.apply_overrides(config, overrides)
    config.data.validation_size = 0
    check_config(config)
    if config.training.num_seeds > 1:
        raise RunError(f'{workdir} holds {config.training.num_seeds} seeds trained together; evaluate one '
                       f'of them: --workdir {os.path.join(workdir, f"seed{config.seed}")} (and the others)')
    best = os.path.join(workdir, 'best')  # a replica's directory has its best checkpoint only
    if not has_checkpoint(workdir) and not (os.path.isdir(best) and any(n.isdigit() for n in os.listdir(best))):
        raise RunError(f'{workdir} has no checkpoint yet')
    setup = build(config, initial_weights=False)  # the checkpoint replaces them
    ckpts = Checkpoints(workdir, keep=config.training.keep_checkpoints)
    try:
        # 'best' falls back to the latest: a run stopped before its first evaluation has no best.
        state = ckpts.restore(setup.state, which)
    finally:
        ckpts.close()
    if state is None:
        raise RunError(f'no checkpoint of {workdir} can be restored (the damaged ones are in {workdir}/damaged)')
    result = make_evaluator(setup, config.training.eval_batch_size)(state)
    return {'model': config.model.name, 'step': int(state.step), **result}
