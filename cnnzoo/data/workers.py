"""grain's worker processes, as a run needs them: named shared memory that nothing leaves behind,
a death that is one line, an end with their parent.

Each batch a worker makes travels to the run's process in a
POSIX shared-memory segment, and each worker's queues and events are named semaphores; both are
files in /dev/shm that outlive their processes unless unlinked. Python unlinks them when it can (a
finished or failed run, a SIGTERM; the resource tracker after a SIGKILL of the run's process
alone), but a SIGKILL of the whole process group (a scheduler's) kills the tracker too, and the
run's batches and semaphores then stay until a reboot. So cnnzoo names them for their owner
(``cnnzoo-<pid namespace>-<pid>-...``, the pid of the run's process) and a run that starts workers
first removes the entries of owners that are gone (:func:`remove_orphans`); the segments of one
iterator also carry its number, so that closing it removes whatever its workers left.
"""

from __future__ import annotations

import atexit
import gc
import itertools
import os
import re
import secrets

from cnnzoo.errors import RunError

SHM_DIR = '/dev/shm'
_OWNED = re.compile(r'^(?:sem\.)?cnnzoo-(\d+)-(\d+)-')
_ITERATORS = itertools.count()
_WORKER_DIED = re.compile(r'Worker process was terminated unexpectedly with exit code (-?\d+)')


def _pid_namespace() -> int:
    """The inode of this process's pid namespace (0 where there is no /proc): a pid means a process
    only within its namespace, and containers may share /dev/shm without sharing pids."""
    try:
        return int(re.sub(r'\D', '', os.readlink('/proc/self/ns/pid')) or 0)
    except OSError:
        return 0


def owner_prefix(pid: int | None = None) -> str:
    """``cnnzoo-<pid namespace>-<pid>``: how the shared memory of process ``pid`` (this one) begins."""
    return f'cnnzoo-{_pid_namespace()}-{os.getpid() if pid is None else pid}'


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_orphans(directory: str = SHM_DIR) -> list[str]:
    """Removes the shared-memory segments and semaphores in ``directory`` that cnnzoo named for a
    process of this pid namespace that no longer runs; returns their names. Unlinking takes only
    the name: a process that still maps a segment (a worker that has not yet noticed its parent's
    end) keeps its memory until it ends."""
    removed: list[str] = []
    namespace = str(_pid_namespace())
    try:
        entries = os.listdir(directory)
    except OSError:  # no /dev/shm (macOS): nothing can have been left there
        return removed
    for entry in entries:
        match = _OWNED.match(entry)
        if match is None or match.group(1) != namespace or _alive(int(match.group(2))):
            continue
        try:
            os.unlink(os.path.join(directory, entry))
        except OSError:  # removed meanwhile by another start, or not ours to remove
            continue
        removed.append(entry)
    return removed


_claimed_by = None  # the pid that last claimed: a forked child claims anew, under its own name


def claim_shared_memory() -> str:
    """Before this process starts grain workers: removes what dead runs left in /dev/shm (once per
    process) and names this process's semaphores for it; returns :func:`owner_prefix`."""
    global _claimed_by  # noqa: PLW0603 - once per process, and anew in a forked child
    from multiprocessing import process

    owner = owner_prefix()
    if _claimed_by != os.getpid():
        remove_orphans()
        atexit.register(_release_at_exit, f'{owner}-', os.getpid())
        _claimed_by = os.getpid()
    # multiprocessing names a semaphore '<semprefix>-<random>' (synchronize.SemLock._make_name); the
    # prefix is the process's own setting, '/mp' by default
    process.current_process()._config['semprefix'] = f'/{owner}'  # type: ignore[attr-defined]  # private, not in the stubs
    return owner


def start_worker(worker_index: int = 0, worker_count: int = 0, *, segments: str) -> None:
    """Run in each grain worker as it starts: it ends with its parent (:func:`exit_with_parent`),
    names the shared memory of its batches ``/<segments><random>``, and calls itself
    ``cnnzoo-data-<index>`` (what ``ps -o comm`` and ``top`` show, on Linux)."""
    from multiprocessing import shared_memory

    exit_with_parent()
    _name_process(f'cnnzoo-data-{worker_index}')
    # SharedMemory(create=True) takes its name from this module function (psm_<random> by default)
    shared_memory._make_filename = lambda: f'/{segments}{secrets.token_hex(4)}'  # type: ignore[attr-defined]  # private, not in the stubs


def _name_process(name: str) -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):  # not Linux: the name is only a convenience
        pass


def remove_segments(segments: str, directory: str = SHM_DIR) -> list[str]:
    """Unlinks the shared-memory segments named ``<segments>...`` that no part of this process still
    maps (what workers killed or stopped in the middle of a batch left), and tells Python's
    resource tracker, which would otherwise report them as leaked at exit; returns their names."""
    from multiprocessing import resource_tracker

    try:
        entries = [e for e in os.listdir(directory) if e.startswith(segments)]
    except OSError:
        return []
    if not entries:
        return []
    try:
        with open('/proc/self/maps') as f:
            mapped = f.read()
    except OSError:
        return []  # cannot tell which are in use: leave them to their owners
    removed = []
    for entry in entries:
        if f'{directory}/{entry}' in mapped:
            continue  # a batch still held here: unlinked when it is freed
        try:
            os.unlink(os.path.join(directory, entry))
        except OSError:
            continue
        # a worker registers each segment it creates with the tracker the run shares with it, but one
        # killed in between made the file without registering it, and the tracker reports a name it
        # does not hold with a traceback: registering first (a set: no-op if held) makes both cases one
        resource_tracker.register(f'/{entry}', 'shared_memory')
        resource_tracker.unregister(f'/{entry}', 'shared_memory')
        removed.append(entry)
    return removed


def release_segments(segments: str) -> list[str]:
    """Frees the batches only reference cycles still hold, waits for grain to have unlinked those it
    was asked to (it unlinks in a background thread, which the end of the program would cut short:
    what it had not done yet the resource tracker reports as leaked), then :func:`remove_segments`."""
    from grain._src.python.ipc.shared_memory_array import SharedMemoryArray

    gc.collect()
    deleting = SharedMemoryArray._del_thread_pool
    if deleting is not None:
        try:
            deleting.apply(int)  # one thread, first come first served: the earlier deletions are done
        except ValueError:  # the pool was already stopped at exit: nothing pending can run
            pass
    return remove_segments(segments)


def _release_at_exit(segments: str, pid: int) -> None:
    if os.getpid() == pid:  # not in a child forked after the claim: its parent's batches are not its own
        release_segments(segments)


def worker_death(error: BaseException) -> RunError | None:
    """The one-line error for grain's report of a worker process that died (None for any other
    error): ``data worker N of W died (killed by signal S); run the same command to resume``."""
    match = _WORKER_DIED.search(str(error))
    if match is None:
        return None
    code = int(match.group(1))
    how = f'killed by signal {-code}' if code < 0 else f'exit status {code}'
    who = 'a data worker'
    tb = error.__traceback__
    while tb is not None:  # the worker's iterator is among the frames grain raised it from
        context = getattr(getattr(tb.tb_frame.f_locals.get('self'), '_iter_parent', None), '_mp_context', None)
        if context is not None:
            who = f'data worker {context.process_index} of {context.process_count}'
        tb = tb.tb_next
    return RunError(f'{who} died ({how}); run the same command to resume')


class WorkerPool:
    """A grain iterable read by worker processes, whose iterators turn a worker's death into one
    :class:`RunError` line and, closed, leave nothing of theirs in /dev/shm."""

    def __init__(self, iterable, segments: str):
        self.iterable, self.segments = iterable, segments

    def __iter__(self):
        return _WorkerPoolIterator(iter(self.iterable), self.segments)


class _WorkerPoolIterator:
    def __init__(self, iterator, segments: str):
        self._iterator, self._segments = iterator, segments

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._iterator)
        except RuntimeError as e:
            died = worker_death(e)
            if died is None:
                raise
            raise died from None

    def get_state(self):
        return self._iterator.get_state()

    def set_state(self, state) -> None:
        self._iterator.set_state(state)

    def close(self) -> None:
        """Stops the workers and removes what they left (see :func:`release_segments`)."""
        self._iterator.close()
        release_segments(self._segments)


def exit_with_parent(worker_index: int = 0, worker_count: int = 0, *, interval: float = 0.5) -> None:
    """Run in each grain worker as it starts: the worker ends itself once its parent is gone.

    A run killed with SIGKILL cannot stop its workers, and an orphaned worker would go on holding
    its share of the machine and the parent's standard output (a scheduler or a pipe reading that
    output would wait for it). A daemon thread checks every ``interval`` seconds whether the worker
    was handed to another parent, and then exits the process.
    """
    import threading
    import time

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name='cnnzoo-parent-watch').start()


def absl_flags_parsed() -> None:
    """grain's worker processes read absl flags; a program that never parsed them (cnnzoo's
    command line is argparse) marks them parsed with their defaults."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def iterator_segments(owner: str) -> str:
    """The prefix of one iterator's batch segments: ``<owner>-<iterator number>_``."""
    return f'{owner}-{next(_ITERATORS)}_'
