"""orbax checkpoints of a run: the last k under ``checkpoints/``, the best by eval accuracy under ``best/``.

A checkpoint of ``checkpoints/`` holds, as orbax items:

- ``state``: every array of the :class:`~cnnzoo.training.TrainState` (step, params, batch_stats,
  optimizer state): a one-seed run's as one model's, several seeds' replicas stacked on a leading
  axis, as the run holds them. (Checkpoints written before the run package name this item
  ``default``; they restore the same way.)
- ``records``: what the loop keeps between two records of ``metrics.jsonl``: the sums of the
  training window in progress, so that a run stopped inside a window and resumed writes the record
  the uninterrupted run writes.
- ``data``: for a streamed run, its data iterator's state, so that it resumes on the same batches.
  Data held on the device needs nothing: its order and random numbers are derived from
  ``(seed, epoch)`` and ``(seed, step)``.

A best checkpoint (``best/``) holds one replica's arrays alone. orbax writes into a temporary
directory and renames it when complete, so a run killed during a save leaves the previous
checkpoint intact and the half-written one is ignored (and removed when the run starts again).

Damage: a checkpoint that cannot be restored (a truncated or missing file, emptied metadata) is
reported in one line, moved aside to ``damaged/<checkpoints|best>-<step>`` (never deleted: it may
still be worth a look) and the next older one is tried. An error while saving (a full disk, a
lost mount) is a one-line :class:`~cnnzoo.errors.RunError` naming the path, the error and the
last good checkpoint; the half-written save is removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import re
import shutil
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any, Self

import jax
import orbax.checkpoint as ocp

from cnnzoo.errors import RunError, first_line


class _NoOrbaxTracebacks(logging.Filter):
    """orbax logs a failed background save with its whole traceback (hundreds of lines) before the
    error reaches the loop, which reports it in one line; those records are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not ('/orbax/' in record.pathname and record.levelno >= logging.ERROR and record.exc_info)


_ORBAX_FILTER = _NoOrbaxTracebacks()


@dataclasses.dataclass(frozen=True)
class Restored:
    """What :meth:`Checkpoints.restore` read: the state, the loop's training window in progress
    (``records``; None in a best checkpoint or one written before windows were kept) and a streamed
    run's data iterator state (``data``; None for data held on the device)."""

    state: Any  # a TrainState
    records: dict | None = None
    data: dict | None = None

    @property
    def step(self) -> int:
        return int(self.state.step)


class Checkpoints:
    """The checkpoints of one run directory. ``save`` and ``restore`` take and give the run's state
    (one model's, or several replicas stacked); ``save_best`` takes one model's state."""

    def __init__(self, workdir: str, *, keep: int, warn=None):
        self.workdir = os.path.abspath(workdir)
        self._warn = warn or (lambda text: print(f'warning: {text}', file=sys.stderr, flush=True))
        handlers = {'state': ocp.StandardCheckpointHandler(), 'default': ocp.StandardCheckpointHandler(),
                    'records': ocp.JsonCheckpointHandler(), 'data': ocp.JsonCheckpointHandler()}
        self.last = ocp.CheckpointManager(
            os.path.join(self.workdir, 'checkpoints'), item_handlers=handlers,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True))
        self.best = ocp.CheckpointManager(
            os.path.join(self.workdir, 'best'),
            options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True, best_fn=_accuracy,
                                                 best_mode='max', cleanup_tmp_directories=True))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def latest_step(self) -> int | None:
        """The step of the newest checkpoint under ``checkpoints/`` (None without one)."""
        return self.last.latest_step()

    def save(self, state, *, force: bool = False, records: dict | None = None, data: dict | None = None) -> None:
        """Saves ``state``, the loop's ``records`` and a streamed run's ``data``."""
        step = int(state.step)
        if step in self.last.all_steps():
            return
        items = {'state': ocp.args.StandardSave(state.checkpoint_items()), 'records': ocp.args.JsonSave(records or {})}
        if data is not None:
            items['data'] = ocp.args.JsonSave(data)
        self._guarded(self.last, step, lambda: self.last.save(step, args=ocp.args.Composite(**items), force=force))

    def save_best(self, state, accuracy: float) -> None:
        """Saves the state of one model as the best, and waits until it is written.

        Waiting matters in a multi-process run: two asynchronous saves of the same step in flight
        at once, the best's and the latest's, end in barriers that the processes can reach in
        another order, and then wait for each other for ever (seen with orbax 0.12 on two CPU
        processes whenever the last evaluation was the best). A best checkpoint is rare enough to be
        written in the foreground.
        """
        step = int(state.step)
        if step in self.best.all_steps():
            return

        def save():
            self.best.save(step, args=ocp.args.StandardSave(state.checkpoint_items()),
                           metrics={'accuracy': float(accuracy)}, force=True)
            self.best.wait_until_finished()

        self._guarded(self.best, step, save)

    def restore(self, state, which: str | int = 'latest'):
        """``state`` (a freshly initialised one: it gives the tree structure, shapes and shardings)
        with the arrays of a checkpoint: ``'latest'``, ``'best'`` or a step number.

        ``'latest'`` falls back to older checkpoints past damaged ones, ``'best'`` to the latest
        when the best is damaged or absent. Returns a :class:`Restored` (the state, and what the
        checkpoint kept of the loop's records and of a streamed run's data), or ``None`` when there is
        nothing to restore; a step number that does not exist is a RunError listing the ones that do.
        """
        if which == 'best':
            step = self.best.best_step()
            if step is not None:
                restored = self._restore_or_set_aside(self.best, step, state)
                if restored is not None:
                    return restored
            return self.restore(state, 'latest')
        if which == 'latest':
            for step in sorted(self.last.all_steps(), reverse=True):
                restored = self._restore_or_set_aside(self.last, step, state)
                if restored is not None:
                    return restored
            return None
        if isinstance(which, str) or which not in self.last.all_steps():
            steps = sorted(self.last.all_steps()) + [f'{s} (best)' for s in self.best.all_steps()]
            raise RunError(f'{self.workdir} has no checkpoint at step {which}; it has: '
                           f'{", ".join(map(str, steps)) or "none"}')
        restored = self._restore_or_set_aside(self.last, which, state)
        if restored is None:
            raise RunError(f'checkpoint step {which} of {self.workdir} is damaged (moved to {self.workdir}/damaged)')
        return restored

    def steps(self) -> dict:
        """``{'latest': [...], 'best': [...]}``: the steps there are."""
        return {'latest': sorted(self.last.all_steps()), 'best': sorted(self.best.all_steps())}

    def _restore_or_set_aside(self, manager, step: int, state):
        target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state.checkpoint_items())
        try:
            extras = {}
            with _quiet_abandoned_reads():
                if manager is self.best:
                    arrays = manager.restore(step, args=ocp.args.StandardRestore(target))
                else:
                    present = set(manager.item_metadata(step).keys())
                    name = 'state' if 'state' in present else 'default'
                    items = {name: ocp.args.StandardRestore(target)}
                    items.update({k: ocp.args.JsonRestore() for k in ('records', 'data') if k in present})
                    restored = manager.restore(step, args=ocp.args.Composite(**items))
                    arrays = restored[name]
                    extras = {k: restored[k] for k in ('records', 'data') if k in present}
        except Exception as e:  # noqa: BLE001 - orbax and tensorstore raise many kinds; all mean "unreadable"
            where = self._set_aside(manager, step)
            self._warn(f'checkpoint {manager.directory}/{step} cannot be restored ({_unreadable(e)}); '
                       f'moved to {where}, trying an older one')
            return None
        # orbax restored the arrays to the target's shardings
        return Restored(state.replace(**arrays), **(extras if manager is not self.best else {}))

    def _set_aside(self, manager, step: int) -> str:
        kind = os.path.basename(str(manager.directory))
        damaged = os.path.join(self.workdir, 'damaged')
        target = os.path.join(damaged, f'{kind}-{step}')
        if jax.process_index() == 0:  # in a multi-process run, process 0 moves it; the others wait
            os.makedirs(damaged, exist_ok=True)
            if os.path.exists(target):
                target = f'{target}-{time.strftime("%Y%m%d-%H%M%S")}'
            shutil.move(os.path.join(str(manager.directory), str(step)), target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f'cnnzoo: {kind} {step} set aside')
        manager.reload()
        return target

    def _guarded(self, manager, step: int, save) -> None:
        """Runs ``save``; an OS error (now, or from an earlier asynchronous save) is a one-line RunError."""
        try:
            manager.check_for_errors()
            save()
        except Exception as e:  # noqa: BLE001
            self._save_failed(manager, step, e)

    def wait(self) -> None:
        """Waits for the asynchronous saves in flight; a save that failed is a one-line RunError."""
        for manager in (self.last, self.best):
            try:
                manager.wait_until_finished()
            except Exception as e:  # noqa: BLE001
                self._save_failed(manager, None, e)

    def _save_failed(self, manager, step, error: Exception):
        cause = _os_error(error)
        if cause is None:
            raise error
        directory = str(manager.directory)
        for name in os.listdir(directory) if os.path.isdir(directory) else ():
            if '.orbax-checkpoint-tmp' in name:  # the half-written save: never read, but it holds space
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
        good = [s for s in self.last.all_steps() if os.path.isdir(os.path.join(str(self.last.directory), str(s)))]
        last = f'last good checkpoint: step {max(good)}' if good else 'no checkpoint was saved'
        failed = re.search(r'/(\d+)\.orbax-checkpoint-tmp', str(error))  # an earlier asynchronous save
        step = int(failed.group(1)) if failed else step
        what = f'checkpoint step {step}' if step is not None else 'a checkpoint'
        raise RunError(f'could not save {what} in {directory}: {cause}; {last}') from error

    def close(self) -> None:
        """Closes orbax's managers (their threads); an OS error while closing is not one to report."""
        for manager in (self.last, self.best):
            try:
                manager.close()
            except Exception as e:
                if _os_error(e) is None:
                    raise


@contextlib.contextmanager
def _quiet_abandoned_reads():
    """When one array of a checkpoint fails to read, orbax abandons the reads of the others, and
    Python reports each abandoned coroutine with a traceback on stderr: dozens of lines that bury
    the one that matters. Those reports are dropped here; the failure itself is still raised. (The
    reads go on in tensorstore's threads and report again when they end, after this block:
    :func:`quiet_teardown_echoes` drops those.)"""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='coroutine .* was never awaited', category=RuntimeWarning)
            yield
            gc.collect()
    except BaseException:
        gc.collect()
        raise
    finally:
        sys.unraisablehook = hook


def _from_orbax_teardown(exc: BaseException | None, tb=None) -> bool:
    """Whether an exception is one of the echoes of a failed asynchronous save (its other writes
    fail on, or call back into, event loops that orbax has already closed) or of an unreadable
    checkpoint's abandoned reads (each reports, from tensorstore's threads, that the loop is closed)."""
    if exc is None:
        return False
    frames = traceback.extract_tb(tb or exc.__traceback__)
    return ('Event loop is closed' in str(exc) or 'RESOURCE_EXHAUSTED' in str(exc)
            or any('/orbax/' in f.filename or '/asyncio/' in f.filename for f in frames))


class _NoTeardownEchoes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not ('never retrieved' in text and 'orbax' in text) and not (
            record.exc_info and _from_orbax_teardown(record.exc_info[1], record.exc_info[2]))


_TEARDOWN_FILTER = _NoTeardownEchoes()


def _install_quiet_teardown() -> Callable[[], None]:
    """Drops orbax's logged tracebacks of a failed background save and the echoes of its teardown
    (:func:`_from_orbax_teardown`) from the ``absl`` and ``asyncio`` logs and from the process's
    exception hooks; every other record and exception passes. Returns what undoes it: each hook put
    back if it is still the one installed here, each log filter taken out if it was added here."""
    added = []
    for name, log_filter in (('absl', _ORBAX_FILTER), ('asyncio', _TEARDOWN_FILTER), ('absl', _TEARDOWN_FILTER)):
        logger = logging.getLogger(name)
        if log_filter not in logger.filters:
            logger.addFilter(log_filter)
            added.append((logger, log_filter))
    excepthook, unraisablehook, thread_hook = sys.excepthook, sys.unraisablehook, threading.excepthook

    def quiet_excepthook(kind, value, tb):
        if not _from_orbax_teardown(value, tb):
            excepthook(kind, value, tb)

    def quiet_unraisablehook(unraisable):
        if not _from_orbax_teardown(unraisable.exc_value, unraisable.exc_traceback):
            unraisablehook(unraisable)

    def quiet_thread_hook(args):
        if not _from_orbax_teardown(args.exc_value, args.exc_traceback):
            thread_hook(args)

    sys.excepthook, sys.unraisablehook, threading.excepthook = (quiet_excepthook, quiet_unraisablehook,
                                                                quiet_thread_hook)

    def undo() -> None:
        for logger, log_filter in added:
            logger.removeFilter(log_filter)
        if sys.excepthook is quiet_excepthook:
            sys.excepthook = excepthook
        if sys.unraisablehook is quiet_unraisablehook:
            sys.unraisablehook = unraisablehook
        if threading.excepthook is quiet_thread_hook:
            threading.excepthook = thread_hook

    return undo


_FOR_THE_PROCESS: list[Callable[[], None]] = []


def quiet_failed_saves() -> None:
    """For the command line, for the whole process: when an asynchronous save fails (a full disk),
    orbax logs the failure with its whole traceback, and the writes it started beside the failed
    one fail too as they are torn down, some before the error reaches the loop, each printing its
    traceback: a hundred lines around the one that says what happened. Those records and echoes
    (exceptions raised in orbax's or asyncio's own frames, and only those) are dropped from then
    on; the failure itself is reported in one line by :meth:`Checkpoints._save_failed`. Installed
    once, however often called. A library call does the same for its own length only
    (:func:`quiet_teardown_echoes`)."""
    if not _FOR_THE_PROCESS:
        _FOR_THE_PROCESS.append(_install_quiet_teardown())


@contextlib.contextmanager
def quiet_teardown_echoes():
    """What :func:`quiet_failed_saves` drops, dropped while a library call runs (``cnnzoo.train``,
    an evaluation's restore): a notebook that meets a full disk, or a checkpoint whose reads fail,
    sees the one-line error, not hundreds of lines of orbax's and asyncio's tracebacks
    (``results/cpu/probes/orbax_echoes.log``). What is dropped is what :func:`_from_orbax_teardown`
    matches, whichever thread raises it: an exception of the caller's own threads whose traceback
    runs through asyncio is dropped too while the call runs. The caller's hooks and log filters are
    theirs again when the call ends; an echo that comes later still prints."""
    undo = _install_quiet_teardown()
    try:
        yield
    finally:
        undo()


def _os_error(error: BaseException | None) -> str | None:
    """``'[Errno 28] No space left on device: PATH'``-like text when ``error`` is, or wraps, an OS
    error; None otherwise."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError):
            return f'{error.strerror or error}' + (f' ({error.filename})' if error.filename else '')
        text = str(error)
        for marker in ('No space left on device', 'Read-only file system', 'Disk quota exceeded',
                       'Input/output error', 'Permission denied'):
            if marker in text:
                return marker
        error = error.__cause__ or error.__context__
    return None


def _unreadable(e: BaseException) -> str:
    """Why a checkpoint could not be read, in one line (tensorstore's text goes on with its whole spec)."""
    if 'error while reading array' in str(e):
        return f'{type(e).__name__}: an array file is missing, truncated or unreadable'
    return first_line(e, typed=True, limit=160)


def _accuracy(metrics) -> float:
    return metrics['accuracy']
