"""A run's working directory, and the one place that reads and writes its format.

    workdir/
      config.json      the resolved config of the run (written once, checked on resume)
      metrics.jsonl    one JSON object per line: train records and eval records
      tb/              TensorBoard event files
      checkpoints/     the last k orbax checkpoints      (cnnzoo.run.checkpoints)
      best/            the best checkpoint by eval accuracy
      damaged/         checkpoints that could not be restored, moved aside (cnnzoo.run.checkpoints)
      config_history.jsonl  changes made with --extend, each with the step it took effect
      .lock            held (flock) while a run uses the directory
      logs/process<I>.stderr  what process I of a multi-process run printed on stderr, kept when
                       the run lost a process (cnnzoo.run.supervise)
      seed<N>/         with training.num_seeds > 1: replica N's records, as a one-seed workdir

The loop writes it (:class:`MetricsLog`, :func:`write_or_check_config`), the sweep asks whether a
run is finished or running (:func:`read_run`, :func:`is_locked`), the report and evaluate read it
(:func:`read_run`, :func:`read_config`): all through this module.

Which settings define a run (:data:`NOT_DEFINING`): a key defines a run when it changes what the run
computes or the evaluations it records. The keys that only say where the data is read from, how
fast, how often the state is saved, or what is printed do not: a run resumes with them changed, a
sweep counts a finished run with other values as done, and a report does not show them as what
tells points apart. ``seed`` defines a run; a report groups the seeds of one point.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import functools
import json
import os
import shutil
from typing import IO, Any

from cnnzoo import config as config_lib
from cnnzoo.errors import ConfigError, RunError

# Settings that do not define a run (see the module docstring): resume, sweep and report agree.
NOT_DEFINING = frozenset({
    'data.source', 'data.archive', 'data.data_dir', 'data.folder', 'data.manual_dir', 'data.workers',
    'training.progress_bar', 'training.log_every_steps', 'training.compilation_cache',
    'training.checkpoint_every_steps', 'training.keep_checkpoints', 'training.eval_batch_size',
    'training.deterministic',
})
# Keys that ``extend=True`` may change: the run's length.
LENGTH_KEYS = frozenset({'training.num_steps', 'training.num_epochs'})

CONFIG, METRICS, HISTORY, LOCK = 'config.json', 'metrics.jsonl', 'config_history.jsonl', '.lock'


def seed_dir(workdir: str, seed: int) -> str:
    """``workdir/seed<N>``: where seed N of a several-seed run (or of a sweep's point) keeps its
    records, as a one-seed workdir."""
    return os.path.join(workdir, f'seed{seed}')


def process_log_path(workdir: str, process_id: int | str) -> str:
    """Where process ``process_id`` of a multi-process run keeps its stderr after losing a peer
    (a string where the number is not known: it follows ``process``)."""
    return os.path.join(workdir, 'logs', f'process{process_id}.stderr')


# ---------------------------------------------------------------------------------------------
# Files written whole, and locks


def atomic_write(path: str, text: str) -> None:
    """Writes ``path`` so that a reader sees the old text or the new one, never a part."""
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(path: str, *, wait: bool = True):
    """An exclusive ``flock`` on ``path`` for the block (the kernel drops it if the process dies).
    ``wait=False`` raises BlockingIOError at once when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class WorkdirLock:
    """The run's exclusive lock on ``workdir/.lock``, holding the owner's pid; the kernel drops it
    when the process dies, so a killed run never leaves its directory locked."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, LOCK)
        self._hold: contextlib.AbstractContextManager[Any] | None = None

    def acquire(self) -> WorkdirLock:
        """Takes the lock, or raises a one-line RunError naming the process that holds it."""
        hold = locked(self.path, wait=False)
        try:
            fd = hold.__enter__()
        except BlockingIOError:
            with open(self.path) as f:
                holder = f.read(64).strip() or 'another process'
            raise RunError(f'{os.path.dirname(self.path)} is in use by another run (pid {holder}); '
                           'wait for it to finish or choose another --workdir') from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._hold = hold
        return self

    def release(self) -> None:
        """Gives the lock back (the kernel does too when the process ends)."""
        if self._hold is not None:
            self._hold.__exit__(None, None, None)
            self._hold = None


def is_locked(directory: str) -> bool:
    """Whether a process holds ``directory``'s run lock now, i.e. a run is training in it."""
    path = os.path.join(directory, LOCK)
    if not os.path.exists(path):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# config.json


@functools.cache
def _schema_defaults() -> dict:
    return config_lib.flatten(json.loads(config_lib.to_json(config_lib.default_config())))


def flat_config(config) -> dict:
    """``config`` (a ConfigDict, or a dict read from ``config.json``) as dotted keys, with the keys
    the schema gained after the run started at their defaults: what the run used before they existed."""
    saved = config_lib.flatten(json.loads(config_lib.to_json(config)) if not isinstance(config, dict) else config)
    return {**saved, **{k: v for k, v in _schema_defaults().items() if k not in saved}}


def defining_changes(saved, wanted) -> list[str]:
    """The keys that define a run (not :data:`NOT_DEFINING`) whose values differ between two configs."""
    a, b = flat_config(saved), flat_config(wanted)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k not in NOT_DEFINING)


def read_config(workdir: str):
    """The config a run directory holds (``config.json``) as a ConfigDict; a ConfigError (bad input:
    the directory named is not a run's) when it has none."""
    path = os.path.join(workdir, CONFIG)
    if not os.path.isdir(workdir):
        raise ConfigError(f'--workdir {workdir}: ' + ('not a directory' if os.path.exists(workdir) else 'not found'))
    if not os.path.exists(path):
        raise ConfigError(f'--workdir {workdir} holds no training run (no {CONFIG})')
    with open(path) as f:
        return config_lib.from_json(f.read())


def write_or_check_config(workdir: str, config, *, extend: bool = False, write: bool = True) -> None:
    """Writes ``config.json``; when there is a checkpoint to resume, refuses a config that would change the run.

    A start that failed before its first checkpoint (say, the data was not found) binds nothing.
    With ``extend``, the run's length (``training.num_steps`` / ``num_epochs``) may change; each
    change is appended to ``config_history.jsonl`` with the checkpoint step it takes effect at.
    ``write=False`` checks only (the other processes of a multi-process run, beside process 0).
    """
    path = os.path.join(workdir, CONFIG)
    text = config_lib.to_json(config)
    if os.path.exists(path) and has_checkpoint(workdir):
        with open(path) as f:
            saved = json.load(f)
        changed = defining_changes(saved, config)
        refused = [k for k in changed if not (extend and k in LENGTH_KEYS)]
        if refused:
            hint = (' (to train a run for longer, add --extend)' if set(refused) <= LENGTH_KEYS else '')
            raise ConfigError(f'{workdir} holds a run with a different config ({", ".join(refused)}); '
                           f'resume with the same settings or choose another --workdir{hint}')
        if changed and write:
            before, after = flat_config(saved), flat_config(config)
            record = {'step': latest_checkpoint_step(workdir),
                      'changes': {k: [before.get(k), after.get(k)] for k in changed}}
            with open(os.path.join(workdir, HISTORY), 'a') as f:
                f.write(json.dumps(record) + '\n')
    if write:
        atomic_write(path, text + '\n')


# ---------------------------------------------------------------------------------------------
# Checkpoint folders (their contents are orbax's: cnnzoo.run.checkpoints)


def _steps(directory: str) -> list[int]:
    return sorted(int(n) for n in os.listdir(directory) if n.isdigit()) if os.path.isdir(directory) else []


def latest_checkpoint_step(workdir: str) -> int | None:
    """The step of the newest checkpoint under ``checkpoints/`` (None without one)."""
    return max(_steps(os.path.join(workdir, 'checkpoints')), default=None)


def has_checkpoint(workdir: str) -> bool:
    """Whether the run has a checkpoint to resume from (under ``checkpoints/``)."""
    return latest_checkpoint_step(workdir) is not None


def has_best(workdir: str) -> bool:
    """Whether the run has a best checkpoint (under ``best/``; a replica directory has only that)."""
    return bool(_steps(os.path.join(workdir, 'best')))


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


@contextlib.contextmanager
def provisional_files(workdir: str):
    """Undoes what the block created if it fails before the run's first checkpoint.

    A start that fails (a bad value, missing data, a NaN in the first steps) leaves the disk as it
    found it: the files and folders it added to ``workdir`` are removed, ``config.json`` gets its old
    text back, and the directories the start created, ``workdir`` and any missing parents, are
    removed. Once a checkpoint exists the run is real and nothing is removed.
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError(f'--workdir {workdir} is a file, not a directory')
    created = missing_parents(workdir)
    before = set(os.listdir(workdir)) if not created else set()
    config_path = os.path.join(workdir, CONFIG)
    old_config = _read(config_path) if os.path.isfile(config_path) else None
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.EEXIST):  # a parent is a file
            raise ConfigError(f'--workdir {workdir}: {e.strerror} ({e.filename or workdir})') from None
        raise
    try:
        yield
    except BaseException:
        if not has_checkpoint(workdir) and not os.path.isdir(os.path.join(workdir, 'damaged')):
            if created:
                shutil.rmtree(created[-1], ignore_errors=True)
            else:
                for name in set(os.listdir(workdir)) - before:
                    target = os.path.join(workdir, name)
                    if os.path.isdir(target) and not os.path.islink(target):
                        shutil.rmtree(target, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            os.remove(target)
                if old_config is not None and _read(config_path) != old_config:
                    atomic_write(config_path, old_config)
        raise


def missing_parents(path: str) -> list[str]:
    """The directories ``os.makedirs(path)`` would create, innermost first (``path`` itself first)."""
    missing, current = [], os.path.abspath(path)
    while not os.path.exists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return missing


# ---------------------------------------------------------------------------------------------
# metrics.jsonl and TensorBoard


def read_records(workdir: str, *, until: int | None = None) -> list[dict]:
    """The records of ``metrics.jsonl`` in file order (only those up to step ``until`` when given).
    A line cut short by a kill is skipped."""
    path = os.path.join(workdir, METRICS)
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if until is None or record.get('step', 0) <= until:
                records.append(record)
    return records


def is_eval(record: dict) -> bool:
    """Whether a metrics record is an evaluation (the rest are training windows)."""
    return record.get('split') != 'train'


def _summary_writer(directory: str) -> Any:
    """tensorboardX's ``SummaryWriter`` for ``directory``, imported without PyTorch.

    tensorboardX (protobuf only, no TensorFlow) imports PyTorch at its own import wherever PyTorch
    is installed, only to accept torch tensors; that took 1.6 s of a tiny command-line run's 8.2 (the
    suite starts dozens of runs; a user with the ``torch`` extra pays it on every run;
    results/cpu/probes/tiny_run_startup.log). The records written here
    are Python numbers, so while tensorboardX is imported, ``import torch`` is made to fail as if
    PyTorch were absent (``None`` in ``sys.modules``, Python's own way to block an import), unless
    PyTorch is already loaded. Nothing else is imported meanwhile (protobuf's JSON helpers).
    """
    import sys

    if 'tensorboardX' not in sys.modules and 'torch' not in sys.modules:
        sys.modules['torch'] = None  # type: ignore[assignment]
        try:
            import tensorboardX  # noqa: F401
        finally:
            del sys.modules['torch']
    from tensorboardX import SummaryWriter

    return SummaryWriter(directory)


class MetricsLog:
    """``metrics.jsonl`` plus TensorBoard; on resume, records past the restored step are dropped.

    TensorBoard's events are rewritten from the kept records at every start, so that after any
    number of resumes they hold exactly what an uninterrupted run's hold (appending to the old
    files, with or without a purge step, leaves TensorBoard hiding or doubling points).
    """

    def __init__(self, workdir: str, *, resume_step: int, write: bool = True):
        self.path = os.path.join(workdir, METRICS)
        self.records = read_records(workdir, until=resume_step)
        self._file: IO[str] | None = None
        self._tb: Any = None  # a tensorboardX SummaryWriter, opened with _file
        if not write:  # another process of a multi-process run writes; this one only reads
            return
        atomic_write(self.path, ''.join(json.dumps(r) + '\n' for r in self.records))
        self._file = open(self.path, 'a')  # noqa: SIM115 - open while the run records; close() closes it
        tb_dir = os.path.join(workdir, 'tb')
        shutil.rmtree(tb_dir, ignore_errors=True)
        self._tb = _summary_writer(tb_dir)
        for record in self.records:
            self._write_tb(record)

    def write(self, record: dict) -> None:
        """Appends ``record`` to ``metrics.jsonl`` (flushed at once) and to TensorBoard."""
        self.records.append(record)
        if self._file is None:
            return
        self._file.write(json.dumps(record) + '\n')
        self._file.flush()
        self._write_tb(record)

    def _write_tb(self, record: dict) -> None:
        split = record.get('split', 'train')
        for key, value in record.items():
            if key not in ('step', 'split', 'epoch') and isinstance(value, (int, float)):
                self._tb.add_scalar(f'{split}/{key}', value, record['step'])

    def eval_at(self, step: int) -> dict | None:
        """The evaluation record written at ``step``, if any."""
        return next((r for r in self.records if is_eval(r) and r.get('step') == step), None)

    def best_eval_accuracy(self) -> float:
        """The best evaluation accuracy recorded so far (-1 before the first evaluation)."""
        accs = [r['accuracy'] for r in self.records if is_eval(r) and 'accuracy' in r]
        return max(accs, default=-1.0)

    def close(self) -> None:
        """Closes ``metrics.jsonl`` and the TensorBoard writer."""
        if self._file is not None:
            self._file.close()
            self._tb.close()


# ---------------------------------------------------------------------------------------------
# A run as its readers see it


@dataclasses.dataclass
class RunFiles:
    """One run directory as the loop wrote it: its config and its metrics records."""

    directory: str
    config: dict
    train: list[dict]
    evals: list[dict]
    steps_per_epoch: int | None
    total_steps: int | None

    @property
    def steps_done(self) -> int:
        """The last step the run recorded (0 before its first record)."""
        return max((r['step'] for r in self.train + self.evals), default=0)

    @property
    def finished(self) -> bool:
        """Whether the run evaluated at its last step: what a finished run writes last."""
        return self.total_steps is not None and any(r['step'] == self.total_steps for r in self.evals)

    @property
    def flat(self) -> dict:
        """The config as dotted keys (:func:`flat_config`)."""
        return flat_config(self.config)

    def is_run_of(self, config) -> bool:
        """Whether this is the run ``config`` describes (:data:`NOT_DEFINING` keys aside, as on resume)."""
        return not defining_changes(self.config, config)


def read_run(directory: str) -> RunFiles | None:
    """The run in ``directory``, or None when it has no ``config.json`` yet."""
    try:
        with open(os.path.join(directory, CONFIG)) as f:
            config = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    by_key = {(r.get('split'), r.get('step')): r for r in read_records(directory)}  # the last of a repeat
    records = sorted(by_key.values(), key=lambda r: r['step'])
    train = [r for r in records if not is_eval(r)]
    evals = [r for r in records if is_eval(r) and 'accuracy' in r]
    # Records carry step and epoch = step / steps_per_epoch: the epoch length without reading the data.
    spe = next((round(r['step'] / r['epoch']) for r in records if r.get('epoch')), None)
    return RunFiles(directory, config, train, evals, spe, _total_steps(config, spe))


def _total_steps(config: dict, steps_per_epoch: int | None) -> int | None:
    training = config.get('training', {})
    if training.get('num_steps', 0) > 0:
        return int(training['num_steps'])
    if steps_per_epoch is None:
        return None
    from cnnzoo.training.schedules import steps_from_epochs  # the one epochs -> steps conversion

    return steps_from_epochs(training.get('num_epochs', 0.0), steps_per_epoch)


# Folders of a run directory (and a report's) that hold no run.
SKIP_DIRS = frozenset({'checkpoints', 'best', 'tb', 'plots', 'damaged'})


def find_runs(root: str) -> list[RunFiles]:
    """Every run directory at or under ``root``, in path order."""
    if not os.path.isdir(root):
        raise ConfigError(f'{root} is not a directory')
    runs = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIP_DIRS and not d.startswith('.'))
        if CONFIG in files:
            run = read_run(directory)
            if run is not None and run.flat.get('training.num_seeds', 1) > 1:
                continue  # several seeds trained together: their seed<N>/ directories are the runs
            if run is not None:
                runs.append(run)
            subdirs[:] = []
    if not runs:
        raise ConfigError(f'no run under {root} (a run directory holds config.json, written when a run starts)')
    return runs
