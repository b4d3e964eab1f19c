"""cnnzoo from Python: the functions that the ``cnnzoo`` commands run, for notebooks and scripts.

    import cnnzoo

    config = cnnzoo.get_config('experiments/resnet20_cifar10.py', training={'num_epochs': 1})
    summary = cnnzoo.train(config, 'runs/r20')   # interrupting the cell saves; the summary says it stopped
    summary = cnnzoo.train(config, 'runs/r20')   # the same call resumes
    result = cnnzoo.evaluate('runs/r20')         # the best checkpoint, on the test set
    run = cnnzoo.load('runs/r20', 'latest')      # its model, variables and config, for inspection

Each command parses its flags and calls one function here (``cnnzoo train`` is :func:`train`,
``cnnzoo evaluate`` :func:`evaluate`, ``cnnzoo config`` :func:`get_config`, ``cnnzoo sweep``
:func:`sweep`, ``cnnzoo report`` :func:`report`, ``cnnzoo models`` :func:`list_models`), so a call
does what its command does, less what belongs to the command's process: a call returns a result
and raises :class:`~cnnzoo.errors.ConfigError`, :class:`~cnnzoo.errors.DataError` or
:class:`~cnnzoo.errors.RunError` (each one line) where the command prints that line and exits with
a status; and it installs nothing process-wide beyond its own duration (:func:`train` and
:func:`sweep` take SIGINT and SIGTERM while they run, and give them back; the command's own hooks,
:func:`cnnzoo.cli.common.process_hooks`, are the command's alone).

Config overrides are keyword arguments with Python values, as a sweep's grid states them
(:mod:`cnnzoo.studies.sweep`): a dotted key (``**{'training.num_epochs': 1}``), a section with a
dict of its keys (``training={'num_epochs': 1}``) or a top-level key (``seed=1``); a str is a str, a
list a tuple, a path (``pathlib.Path``) its text. ``text_overrides`` takes ``(key, text)`` pairs as
the command line gives them (``--config.KEY=VALUE``: the text read as a Python literal, else as a
string) and applies them first. A key or value the schema refuses is a one-line ConfigError.

JAX and the training stack are imported inside the functions, on first use: importing this module
(``cnnzoo.train`` and the other names of the package) starts no JAX.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from cnnzoo import config as config_lib
from cnnzoo.errors import ConfigError

if TYPE_CHECKING:
    import flax.linen as nn
    import jax
    import numpy.typing as npt
    from ml_collections import ConfigDict

    from cnnzoo.data import Dataset
    from cnnzoo.data.streaming import Stream
    from cnnzoo.training import TrainState

Path = str | os.PathLike[str]
Checkpoint = Literal['best', 'latest'] | int

__all__ = ['Evaluation', 'LoadedRun', 'Report', 'SweepSummary', 'TrainSummary', 'create_model', 'evaluate',
           'evaluate_torch', 'get_config', 'list_models', 'load', 'report', 'sweep', 'train']


# ---- configs ---------------------------------------------------------------------------------------

def get_config(experiment: Path | None = None, /, *, text_overrides: Iterable[tuple[str, str]] = (),
               **overrides: Any) -> ConfigDict:
    """The config of an experiment file (its ``get_config()``; the schema's defaults when
    ``experiment`` is None) with the overrides applied: ``text_overrides`` first, as the command line
    gives them, then the keyword ``overrides`` (see the module docstring), in order.

    The schema's checks of names and types run here; the whole check a run makes first (the model's
    fields, the data, the devices) runs when :func:`train` starts, before anything is read or written.
    """
    config = config_lib.load_config_file(os.fspath(experiment)) if experiment is not None \
        else config_lib.default_config()
    return config_lib.apply_overrides(config, [*text_overrides, *override_pairs(overrides)])


def override_pairs(overrides: Mapping[str, Any], prefix: str = '') -> list[tuple[str, str]]:
    """Keyword overrides (Python values; a dict is a section's keys) as ``(dotted key, text)`` pairs
    that :func:`cnnzoo.config.apply_overrides` reads back to the same values. A value that is not a
    plain literal (an object, NaN) is a one-line ConfigError, not its ``repr`` taken as a string."""
    pairs = []
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            pairs += override_pairs(value, f'{prefix}{key}.')
            continue
        pairs.append((prefix + key, config_lib.literal_text(prefix + key, value)))
    return pairs


# ---- training --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, repr=False)
class TrainSummary:
    """What :func:`train` returns: where the run is and what it reached.

    ``stopped_by`` names the signal that stopped the run (``'SIGINT'``: a notebook's interrupt or
    Ctrl-C; ``'SIGTERM'``) after it saved its state (the checkpoint of step ``checkpoint``); None
    when it finished. ``final`` is the last evaluation record (``step``, ``split``, ``epoch``,
    ``loss``, ``accuracy``; None before the first), ``evals`` every one, ``best_accuracy`` the best.
    A run of several seeds (``training.num_seeds``) reports its first seed here and every seed under
    ``replicas``. ``state`` is the final :class:`~cnnzoo.training.TrainState`.
    """

    workdir: str
    step: int
    total_steps: int
    stopped_by: str | None
    checkpoint: int | None
    wall_seconds: float
    train_images_per_sec: float | None
    best_accuracy: float | None
    final: dict[str, Any] | None
    evals: list[dict[str, Any]]
    replicas: list[dict[str, Any]]
    state: TrainState

    @property
    def stopped(self) -> bool:
        """Whether a signal stopped the run before its last step (it resumes where it stopped)."""
        return self.stopped_by is not None

    def __repr__(self) -> str:
        if self.stopped:
            kept = (f'checkpoint of step {self.checkpoint} saved' if self.checkpoint is not None
                    else 'no checkpoint yet')
            return (f'TrainSummary({self.workdir!r}: stopped by {self.stopped_by} at step {self.step}/'
                    f'{self.total_steps}, {kept}; train(config, workdir) again resumes)')
        final = (f', {self.final["split"]} accuracy {self.final["accuracy"]:.4f}' if self.final else '') \
            + (f' (best {self.best_accuracy:.4f})' if self.best_accuracy is not None else '')
        return (f'TrainSummary({self.workdir!r}: finished at step {self.step}/{self.total_steps}{final}, '
                f'{self.wall_seconds:.1f} s)')


def train(config: ConfigDict, workdir: Path, *, extend: bool = False,
          join: Callable[[], object] | None = None) -> TrainSummary:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint; ``cnnzoo train``.

    The config is checked whole first: a bad value is a one-line ConfigError before anything is read
    or written. While the run goes, SIGINT (a notebook's interrupt, Ctrl-C) and SIGTERM stop it at
    the next step boundary, after it saves a checkpoint; the call then returns a summary whose
    ``stopped_by`` names the signal, and the same call resumes the run where it stopped, on the same
    trajectory as a run never stopped (:mod:`cnnzoo.run.loop`). A second interrupt acts at once
    (KeyboardInterrupt; the last complete checkpoint is kept, and the same call resumes from it). The
    previous handlers of both signals are back when the call returns.

    ``extend=True`` lets a finished run go on with a longer ``training.num_steps`` or ``num_epochs``.
    ``join``: the command line's multi-process runs (``cnnzoo train --coordinator ...``): called once
    the config is known good, before the devices are counted. Progress goes to stdout: a line per
    record in a file, a live bar on a terminal or in a notebook (``training.progress_bar``).

    Signal handlers can only be set from the main thread: a call from another thread is refused.
    """
    _main_thread_only('train')
    from cnnzoo.run.loop import train_and_evaluate
    from cnnzoo.run.workdir import latest_checkpoint_step

    workdir = os.fspath(workdir)
    summary = train_and_evaluate(config, workdir, extend=extend, join=join)
    return TrainSummary(workdir=workdir, step=summary['step'], total_steps=summary['total_steps'],
                        stopped_by=summary['stopped_by'], checkpoint=latest_checkpoint_step(workdir),
                        wall_seconds=summary['wall_seconds'], train_images_per_sec=summary['train_images_per_sec'],
                        best_accuracy=summary['best_accuracy'], final=summary['final'], evals=summary['evals'],
                        replicas=summary['replicas'], state=summary['state'])


def _main_thread_only(what: str) -> None:
    """``what`` takes the stop signals while it runs, which Python allows the main thread alone."""
    if threading.current_thread() is not threading.main_thread():
        raise ConfigError(f'cnnzoo.{what}() must be called from the main thread (a notebook cell runs there): '
                          'it takes SIGINT and SIGTERM to stop a run after saving it')


# ---- evaluation and inspection --------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured: ``accuracy`` and mean ``loss`` over ``count`` test images of
    the checkpoint of step ``step``; ``checkpoint`` says which one it is and why (``'best (step
    30, the highest evaluation accuracy of the run)'``)."""

    model: str
    step: int
    checkpoint: str
    accuracy: float
    loss: float
    count: int

    def __str__(self) -> str:
        return (f'{self.model}, checkpoint {self.checkpoint}: test accuracy {self.accuracy:.4f}, '
                f'loss {self.loss:.4f} on {self.count} images')


def _checkpoint(which: object) -> Checkpoint:
    """``checkpoint=`` checked: 'best', 'latest' or a step number."""
    if which in ('best', 'latest') or (isinstance(which, int) and not isinstance(which, bool) and which >= 0):
        return which
    raise ConfigError(f'checkpoint={which!r}: must be best, latest or a step number')


def evaluate(workdir: Path, checkpoint: Checkpoint = 'best', *, text_overrides: Iterable[tuple[str, str]] = (),
             **overrides: Any) -> Evaluation:
    """Test accuracy and loss of one checkpoint of the run in ``workdir``: ``'best'`` (by evaluation
    accuracy; the latest when the run has no best one yet), ``'latest'`` or a step; ``cnnzoo
    evaluate``. The run's own ``config.json`` builds the model and data; overrides (as for
    :func:`get_config`) can point at the data elsewhere (``data={'archive': ...}``). Always the
    official test split, even when the run held out a validation split for its own evaluations."""
    from cnnzoo.run.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(os.fspath(workdir), which=_checkpoint(checkpoint),
                                 overrides=[*text_overrides, *override_pairs(overrides)])
    return Evaluation(model=result['model'], step=result['step'], checkpoint=result['checkpoint'],
                      accuracy=result['accuracy'], loss=result['loss'], count=result['count'])


def evaluate_torch(config: ConfigDict, path: Path, *, compare: bool = True) -> dict[str, Any]:
    """Top-1 and top-5 accuracy of a PyTorch ``state_dict`` file (a torchvision checkpoint) converted
    to ``config``'s model, on its data's evaluation split, and (``compare``) the agreement of its
    predictions with the PyTorch twin's on the same files; ``cnnzoo evaluate --torch-checkpoint``
    (:func:`cnnzoo.run.evaluate.evaluate_torch_checkpoint` says what the result holds)."""
    from cnnzoo.run.evaluate import evaluate_torch_checkpoint

    return evaluate_torch_checkpoint(config, os.fspath(path), compare=compare)


@dataclasses.dataclass(frozen=True, repr=False)
class LoadedRun:
    """A checkpoint of a run, loaded for inspection (:func:`load`).

    ``model`` is the flax module and ``variables`` its ``{'params': ..., 'batch_stats': ...}``
    (``batch_stats`` empty for a model without BatchNorm), so that ``model.apply(variables, x,
    train=False)`` gives logits for normalized images ``x``; :meth:`logits` normalizes images as the
    run did. ``state`` is the whole :class:`~cnnzoo.training.TrainState` (the optimizer's state
    too), ``config`` the run's config, ``dataset`` its data (``test_images``, ``test_labels``,
    ``class_names``, ``mean``, ``std``; a streamed set for image folders and tfds), ``checkpoint``
    which checkpoint this is and why.
    """

    workdir: str
    step: int
    checkpoint: str
    config: ConfigDict
    model: nn.Module
    variables: dict[str, Any]
    state: TrainState
    dataset: Dataset | Stream

    def logits(self, images: npt.ArrayLike) -> jax.Array:
        """The model's logits (eval mode) for ``images``: NHWC, uint8 pixels as the data holds them
        (``dataset.test_images[:8]``), scaled to [0, 1] and normalized with the data's mean and std
        as the run's evaluation does."""
        import jax.numpy as jnp

        return self._logits(self.variables, jnp.asarray(images))

    @functools.cached_property
    def _logits(self) -> Callable[[dict[str, Any], jax.Array], jax.Array]:
        """The jitted eval-mode forward pass from uint8 images, made once per loaded run."""
        import jax
        import jax.numpy as jnp

        from cnnzoo.data import normalize

        def logits(variables: dict[str, Any], images: jax.Array) -> jax.Array:
            x = normalize(images.astype(jnp.float32) / 255.0, self.dataset.mean, self.dataset.std)
            return jnp.asarray(self.model.apply(variables, x, train=False))

        return jax.jit(logits)

    def __repr__(self) -> str:
        import jax

        count = sum(x.size for x in jax.tree_util.tree_leaves(self.variables['params']))
        return (f'LoadedRun({self.workdir!r}: {self.config.model.name}, {count:,} parameters, '
                f'checkpoint {self.checkpoint})')


def load(workdir: Path, checkpoint: Checkpoint = 'best', *, text_overrides: Iterable[tuple[str, str]] = (),
         **overrides: Any) -> LoadedRun:
    """Checkpoint ``checkpoint`` of the run in ``workdir`` (``'best'``, ``'latest'`` or a step, as for
    :func:`evaluate`) with the model, data and config it belongs to, for inspection; nothing is
    trained or written. Overrides (as for :func:`get_config`) can point at the data elsewhere."""
    from cnnzoo.run.evaluate import restore_run

    workdir = os.fspath(workdir)
    run = restore_run(workdir, which=_checkpoint(checkpoint), overrides=[*text_overrides, *override_pairs(overrides)])
    state = cast('TrainState', run.restored.state)
    return LoadedRun(workdir=workdir, step=run.restored.step, checkpoint=run.checkpoint, config=run.config,
                     model=cast('nn.Module', run.setup.model), variables=state.variables(), state=state,
                     dataset=run.setup.dataset)


# ---- studies ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SweepSummary:
    """What :func:`sweep` returns: ``status`` is the command's exit status (0 every run done or
    skipped, 1 a run failed, 2 every run refused at its start, 128 + N stopped by signal N after
    saving); ``runs`` each run's state (``'POINT/seedN'`` -> pending, running, done, failed or
    interrupted) as ``sweep.json`` records it; ``stopped_by`` the signal that stopped the sweep."""

    workdir: str
    status: int
    runs: dict[str, str]
    stopped_by: str | None


def sweep(experiment: Path, workdir: Path, *, seeds: Sequence[int] | None = None,
          only: str | Sequence[str] | None = None, vmap_seeds: bool = False, list_only: bool = False,
          command: Sequence[str] | None = None, text_overrides: Iterable[tuple[str, str]] = (),
          **overrides: Any) -> SweepSummary:
    """Trains every point x seed of an experiment file's grid (its ``get_sweep()``) in ``workdir``, one
    run directory each; ``cnnzoo sweep`` (:mod:`cnnzoo.studies.sweep`). ``seeds``: each point's own
    seed when None; ``only``: globs over the points' names; ``vmap_seeds``: a point's (consecutive)
    seeds as one program; ``list_only``: print the runs and their states, run nothing. The overrides
    apply to every point, after its own. The same call skips finished runs and resumes interrupted
    ones; an interrupt stops the run in progress after saving, and the sweep. ``command`` is what
    ``sweep.json`` records as the command that ran it."""
    from cnnzoo.studies.sweep import Manifest, parse_seeds, run_sweep

    if not list_only:
        _main_thread_only('sweep')
    experiment, workdir = os.fspath(experiment), os.fspath(workdir)
    if seeds is not None:
        seeds = parse_seeds(','.join(map(str, seeds)))  # the command line's checks of the list
    if only is not None and not isinstance(only, str):
        only = ','.join(only)
    status = run_sweep(experiment, workdir, seeds=seeds, only=only, list_only=list_only, command=command,
                       vmap_seeds=vmap_seeds, overrides=[*text_overrides, *override_pairs(overrides)])
    recorded = Manifest(workdir).read().get('runs', {}) if os.path.isdir(workdir) else {}
    return SweepSummary(workdir=workdir, status=status, runs={k: e.get('state', '') for k, e in recorded.items()},
                        stopped_by=signal.Signals(status - 128).name if status > 128 else None)


@dataclasses.dataclass(frozen=True)
class Report:
    """What :func:`report` wrote under ``directory`` (``report.md``, ``report.csv`` and, with plots,
    ``plots/*.png`` and ``.svg``): ``markdown`` is ``report.md``'s text, ``table`` its table, which is
    what a notebook shows of it."""

    directory: str
    markdown: str
    table: str

    def __str__(self) -> str:
        return self.table

    def _repr_markdown_(self) -> str:
        return self.table


def report(directory: Path, *, plots: bool = True, say: Callable[[str], None] | None = None) -> Report:
    """The table and figures of a sweep (or of any directory holding runs), made only from what the
    runs wrote, so at any time, of a sweep in progress too; ``cnnzoo report``
    (:mod:`cnnzoo.studies.report`). ``say`` receives a line about each thing done (the runs read,
    each figure drawn)."""
    from cnnzoo.studies.report import write_report

    directory = os.fspath(directory)
    markdown, table = write_report(directory, plots=plots, say=say or (lambda line: None))
    return Report(directory=directory, markdown=markdown, table=table)


# ---- models ----------------------------------------------------------------------------------------

def list_models(pattern: str | None = None) -> list[str]:
    """The registered models' names (those matching the glob ``pattern``), in natural order."""
    from cnnzoo.models import list_models as registered

    return registered(pattern)


def create_model(name: str, *, num_classes: int = 10, **fields: Any) -> nn.Module:
    """A new, unbound flax module of model ``name`` (:func:`list_models`) with ``fields`` changed from
    its defaults (``activation='tanh'``); ``model.init(rng, images, train=False)`` makes its
    variables. An unknown name or field, or a value a field does not allow, is a one-line ValueError."""
    from cnnzoo.models import create_model as registered

    return registered(name, num_classes=num_classes, **fields)
