"""Restore a run's checkpoint and measure its accuracy on the test set."""

from __future__ import annotations

import dataclasses
import os

import chex
import ml_collections

from cnnzoo import config as config_lib
from cnnzoo.errors import ConfigError, RunError
from cnnzoo.run.checkpoints import Checkpoints, Restored, quiet_teardown_echoes
from cnnzoo.run.feeds import is_streamed, make_evaluator
from cnnzoo.run.setup import Setup, build
from cnnzoo.run.validation import check_config
from cnnzoo.run.workdir import (
    has_best,
    has_checkpoint,
    is_eval,
    latest_checkpoint_step,
    read_config,
    read_records,
    seed_dir,
)
from cnnzoo.training import make_loss


@dataclasses.dataclass(frozen=True)
class RestoredRun:
    """A checkpoint of a run, restored (:func:`restore_run`): the run's config (with the overrides),
    what it is made of (its data, its model, ...), the restored state and which checkpoint it is, in
    words (:func:`describe_checkpoint`)."""

    config: ml_collections.ConfigDict
    setup: Setup
    restored: Restored
    checkpoint: str


def restore_run(workdir: str, *, which: str | int = 'best', overrides=()) -> RestoredRun:
    """Checkpoint ``which`` ('best', 'latest' or a step) of the run in ``workdir``, restored on the
    model and data its ``config.json`` builds; ``overrides`` (``(key, value)`` pairs as on the command
    line) can point at the data elsewhere. The data is always the official test split, even when the
    run held out a validation split for its own evaluations.

    'best' is the latest checkpoint when the run has no best one (it stopped before its first
    evaluation) or its best cannot be restored; ``checkpoint`` says which one it is and why. A
    directory that is not a run's, or a run with no checkpoint yet, is bad input (ConfigError), found
    before anything is built.
    """
    config = read_config(workdir)
    config_lib.apply_overrides(config, overrides)
    config.data.validation_size = 0
    check_config(config)
    if config.training.num_seeds > 1:
        raise ConfigError(f'{workdir} holds {config.training.num_seeds} seeds trained together; evaluate one '
                          f'of them: --workdir {seed_dir(workdir, config.seed)} (and the others)')
    if not has_checkpoint(workdir) and not has_best(workdir):  # a replica's directory has its best only
        raise ConfigError(f'--workdir {workdir} has no checkpoint yet (the run saves its first one after '
                          f'training.checkpoint_every_steps steps, or when it stops)')
    setup = build(config, initial_weights=False, training=False)  # the checkpoint replaces them
    with quiet_teardown_echoes(), Checkpoints(workdir, keep=config.training.keep_checkpoints) as ckpts:
        best_step = ckpts.best.best_step()
        latest_step = latest_checkpoint_step(workdir)
        steps = ckpts.steps()
        if isinstance(which, int) and which not in steps['latest']:  # a bad --checkpoint: refused first
            there = [*map(str, steps['latest']), *(f'{s} (best)' for s in steps['best'])]
            raise ConfigError(f'--checkpoint {which}: {workdir} has no checkpoint at step {which}; it has: '
                              f'{", ".join(there) or "none"}')
        # 'best' falls back to the latest: a run stopped before its first evaluation has no best.
        restored = ckpts.restore(setup.state, which)
    if restored is None:
        raise RunError(f'no checkpoint of {workdir} can be restored (the damaged ones are in {workdir}/damaged)')
    evaluated = any(is_eval(r) for r in read_records(workdir))
    return RestoredRun(config, setup, restored,
                       describe_checkpoint(which, restored.step, best_step=best_step, latest_step=latest_step,
                                           evaluated=evaluated))


def evaluate_checkpoint(workdir: str, *, which: str | int = 'best', overrides=()) -> dict:
    """Test-set loss and accuracy of checkpoint ``which`` ('best', 'latest' or a step) of a run,
    restored by :func:`restore_run` (which says what ``which`` and ``overrides`` may be). The result's
    ``checkpoint`` says which one was evaluated and why (:func:`describe_checkpoint`)."""
    run = restore_run(workdir, which=which, overrides=overrides)
    chex.clear_trace_counter()  # an evaluation is a program of its own: its step compiles once in it
    evaluator = make_evaluator(run.setup, run.config.training.eval_batch_size, make_loss(run.config, evaluation=True))
    result = evaluator(run.restored.state)[0]
    return {'model': run.config.model.name, 'step': run.restored.step, 'checkpoint': run.checkpoint, **result}


def describe_checkpoint(which: str | int, step: int, *, best_step: int | None, latest_step: int | None,
                        evaluated: bool) -> str:
    """Which checkpoint was evaluated and why, for the user: ``which`` was asked for, ``step`` was
    restored; ``best_step``/``latest_step`` are what the run holds (None: none), ``evaluated``
    whether its metrics hold an evaluation."""
    if which == 'best' and best_step is not None and step == best_step:
        return f'best (step {step}, the highest evaluation accuracy of the run)'
    if which == 'best':
        if best_step is not None:
            why = f'its best checkpoint (step {best_step}) could not be restored'
        elif evaluated:
            why = 'the run has no best checkpoint'
        else:
            why = 'the run has no best checkpoint: it never evaluated'
        return f'latest (step {step}; {why})'
    if which == 'latest' and latest_step is not None and step != latest_step:
        return f'latest (step {step}; the checkpoint of step {latest_step} could not be restored)'
    if which == 'latest':
        return f'latest (step {step})'
    return f'step {step}'


def evaluate_torch_checkpoint(config, path: str, *, compare: bool = True) -> dict:
    """Accuracy of a PyTorch ``state_dict`` file (a torchvision checkpoint, say) converted to
    ``config``'s model, on its data's evaluation split, and (``compare``) the agreement of its
    predictions with the PyTorch twin's, which reads the same files through its own pipeline
    (:mod:`cnnzoo.torch.pipeline`): top-1 agreement, the largest logit difference, both accuracies.

    The whole state_dict is loaded, the classifier head included: its class count must be the
    data's. The twin comparison is made for streamed data (an image folder or tfds). A file that is
    missing or does not fit the model is bad input (ConfigError).
    """
    import numpy as np

    from cnnzoo.run.feeds import eval_logits
    from cnnzoo.torch.convert import ConversionError, init_from_state_dict, load_torch_checkpoint

    check_config(config)
    if not os.path.isfile(os.path.expanduser(path)):  # refused before the data and the model are built
        raise ConfigError(f'--torch-checkpoint {path}: not found')
    setup = build(config, initial_weights=False, training=False)
    try:
        state_dict = load_torch_checkpoint(os.path.expanduser(path))
        _check_head(path, state_dict, setup)
        one = setup.state  # a one-seed setup: one model's
        variables = init_from_state_dict(one.variables(), state_dict, setup.model, reset_head=False)
    except ConversionError as e:  # a file that does not fit the model: bad input, nothing was evaluated
        raise ConfigError(f'--torch-checkpoint {path}: {e}') from e
    state = one.replace(params=variables['params'], batch_stats=variables.get('batch_stats', {}))
    logits, labels = eval_logits(setup, state, config.training.eval_batch_size)
    result = {'model': config.model.name, 'checkpoint': path, 'count': len(labels),
              'accuracy': float(np.mean(np.argmax(logits, -1) == labels)),
              'top5_accuracy': _top5(logits, labels)}
    if compare and is_streamed(setup.dataset):
        import torch

        from cnnzoo.torch.models import create_torch_model
        from cnnzoo.torch.pipeline import eval_transform, twin_logits

        ds = setup.dataset
        fields = {k: v for k, v in config.model.items() if k != 'name'}
        twin = create_torch_model(config.model.name, num_classes=ds.num_classes, **fields)
        twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()})
        transform = eval_transform(ds.preset, ds.image_size, ds.mean, ds.std)
        theirs = twin_logits(twin, ds.eval, transform)
        diff = np.abs(theirs - logits)
        result.update(torch_pipeline=transform.name, torch_accuracy=float(np.mean(np.argmax(theirs, -1) == labels)),
                      distinct_predictions=int(len(np.unique(np.argmax(logits, -1)))),
                      top1_agreement=float(np.mean(np.argmax(theirs, -1) == np.argmax(logits, -1))),
                      max_logit_difference=float(diff.max()),
                      max_relative_difference=float(diff.max() / max(np.abs(theirs).max(), 1e-12)))
    return result


def _check_head(path: str, state_dict, setup) -> None:
    """The checkpoint's classifier must have one output per class of the data."""
    from cnnzoo.torch.convert import head_layers

    for layer in head_layers(setup.model):
        bias = state_dict.get(f'{layer.torch}.bias')
        if bias is not None and bias.shape[0] != setup.dataset.num_classes:
            raise ConfigError(f'{path}: its classifier ({layer.torch}) has {bias.shape[0]} outputs, the data '
                           f'{setup.dataset.num_classes} classes; evaluate it on data with its classes')


def _top5(logits, labels) -> float:
    import numpy as np

    k = min(5, logits.shape[-1])
    top = np.argsort(-logits, axis=-1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=-1)))
