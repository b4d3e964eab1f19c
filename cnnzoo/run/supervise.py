"""One process of a multi-process run, watched by a parent: a lost peer becomes one line and a status.

When a process of a multi-process run dies or stops answering, JAX's distributed service notices
the missing heartbeats (``--heartbeat-timeout``) and ends every other process the C++ way: SIGABRT
and a few dozen lines of a check-failure stack, which Python cannot catch. So ``cnnzoo train``, as
one process of such a run, runs the training in a child process (itself again, with
:data:`CHILD_ENV` set) and stays as its parent (:func:`supervise`):

- the child's stdout is the parent's; its stderr passes through the parent, line by line, and all
  of it is kept in a log file; SIGTERM and SIGINT are forwarded (the child saves and stops);
- from the first line that looks like a failure (a traceback, a warning, error or fatal line of
  JAX's C++ logging) the lines are held back: a child that ends on its own (any exit status) gets them
  printed as they were; a child that the distributed service ended (SIGABRT, another signal, or
  its messages in the held lines) gets one ``error:`` line instead, naming the lost process and what
  to do, and the parent exits with :data:`LOST_PROCESS`. The log then stays in
  ``WORKDIR/logs/process<I>.stderr`` (:func:`cnnzoo.run.workdir.process_log_path`);
- the child dies with the parent (:func:`die_with_parent`), so a killed process never leaves a
  training half behind that keeps the others waiting;
- the child tells the parent each time the run moves on (:func:`beat`: a step finished, an
  evaluation batch, a save). A process that is alive and answers the service's heartbeats but no
  longer takes its part (a hang in its own code, a collective that never completes) holds every
  other one in the next collective, where no heartbeat notices it: once the child has moved on at
  least once, a silence of ``stall_s`` seconds (``--stall-timeout``) ends it (SIGKILL to its process
  group), with one ``error:`` line and :data:`LOST_PROCESS`. Every process of a stuck run is silent,
  so each stops this way, or as having lost one that did.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from cnnzoo.run.workdir import process_log_path

# sysexits.h's EX_TEMPFAIL: "a temporary failure; the user is invited to retry".
LOST_PROCESS = 75
CHILD_ENV = 'CNNZOO_SUPERVISED_CHILD'
# The file descriptor of the pipe on which the child tells its parent that the run moved on.
BEAT_ENV = 'CNNZOO_PROGRESS_FD'
# The default --stall-timeout, a judgement: longer than any step, evaluation batch or save of a run
# that goes well on an accelerator, and than a compilation in the middle of a run (the first
# evaluation's). A multi-process CPU run whose one step takes longer must raise it.
DEFAULT_STALL_S = 600
# The child writes at most one beat in this many seconds (the smallest --stall-timeout is 1).
_BEAT_EVERY_S = 0.25
# How long the parent still reads the stderr of a child it has ended for its silence.
_DRAIN_S = 10.0

# Where held-back lines start: a Python traceback, a W, E or F line of absl's C++ logging (which a
# run that goes well does not print; the service's complaints about a lost peer start with one), a
# check failure.
_FAILURE_START = re.compile(rb'^(Traceback \(most recent call last\)|[WEF]\d{4} \d\d:\d\d:\d\d|\*\*\* Check failure)')
# What JAX's distributed service and gloo say when a process of the run is gone.
_LOST_SIGNS = re.compile(rb'heartbeat|distributed service|coordination service|Gloo \w+ failed|Connection closed by peer')
# The process numbers the coordination service names (task = process).
_TASK_LOST = (re.compile(rb'Task (\d+) heartbeat timeout'),
              re.compile(rb'stopped sending heartbeats\):\s*([\d, ]+)'))


class _Beat:
    fd: int | None = None  # the pipe to the parent; -1 outside a supervised child
    at = 0.0  # time.monotonic() of the last beat sent


def beat() -> None:
    """In the child of :func:`supervise`: tells the parent that the run moved on (the loop calls it
    when a step has finished, after each evaluation batch and after a save). Never blocks: a full pipe
    or a parent gone drops the beat. Anywhere else it does nothing."""
    if _Beat.fd is None:  # set by supervise() in its child's environment only
        _Beat.fd = int(os.environ.get(BEAT_ENV) or -1)
    now = time.monotonic()
    if _Beat.fd < 0 or now - _Beat.at < _BEAT_EVERY_S:
        return
    _Beat.at = now
    try:
        os.write(_Beat.fd, b'.')
    except OSError:  # BlockingIOError (the parent reads late), BrokenPipeError (it is gone)
        pass


def is_supervised_child() -> bool:
    """Whether this process is the child that :func:`supervise` started."""
    return bool(os.environ.get(CHILD_ENV))


def die_with_parent() -> None:
    """In the child that :func:`supervise` started: the kernel sends it SIGKILL when its parent dies
    (Linux's ``PR_SET_PDEATHSIG``), so a killed process leaves no training behind that keeps the
    others waiting. Set here, not between fork and exec, where the parent might hold threads."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != os.environ.get(CHILD_ENV):  # the parent died before the call
        os._exit(1)


def can_supervise(argv: Sequence[str]) -> bool:
    """Whether ``argv`` (a command's arguments) are this process's own command line's last ones, so
    that running the process's command line again runs the same command (not so when a command is
    called from Python, say a test, with arguments of its own)."""
    args = list(argv)
    return not is_supervised_child() and bool(args) and sys.argv[1:][-len(args):] == args


def supervise(*, process_id: int | None, num_processes: int | None, workdir: str,
              stall_s: int = DEFAULT_STALL_S) -> int:
    """Runs this process's command line again as a child and waits for it; returns the exit status:
    the child's own when it ended on its own, :data:`LOST_PROCESS` when the run lost a process or
    the child, having moved on before, was silent for ``stall_s`` seconds (0: never)."""
    command = [sys.executable, *sys.orig_argv[1:]]
    log = tempfile.NamedTemporaryFile(prefix='cnnzoo-stderr-', suffix='.log', delete=False)  # noqa: SIM115 - `with log:` below
    beats, beats_w = os.pipe()
    os.set_blocking(beats_w, False)
    try:
        child = subprocess.Popen(command, env={**os.environ, CHILD_ENV: str(os.getpid()), BEAT_ENV: str(beats_w)},
                                 stderr=subprocess.PIPE, process_group=0, pass_fds=(beats_w,))
    except BaseException:  # the child did not start: nothing will read the log or the beats
        log.close()
        os.unlink(log.name)
        os.close(beats)
        raise
    finally:
        os.close(beats_w)
    # In its own process group the child hears a terminal's Ctrl-C once, from here, not twice.
    forwarded = set()

    def forward(signum, frame):
        forwarded.add(signum)
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    held: list[bytes] = []

    def take(line: bytes) -> None:
        log.write(line)
        log.flush()
        if held or _FAILURE_START.match(line):
            held.append(line)
        else:
            _write_stderr(line)

    try:
        with log:
            stalled = _watch(child, beats, take, stall_s)
        status = child.wait()
    finally:
        os.close(beats)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    text = b''.join(held)
    if stalled:
        message = stall_message(stall_s, process_id, num_processes, _keep_log(log.name, workdir, process_id))
        print(f'error: {message}', file=sys.stderr, flush=True)
        return LOST_PROCESS
    if -status in forwarded and not _LOST_SIGNS.search(text):  # a repeated stop signal, acting as usual
        return 128 - status
    # Finished, or stopped by a signal after saving: the child's own ending, whatever JAX said at exit
    # (a process that finishes after the others may hear the coordination service go away).
    own_ending = status in (0, *(128 + sig for sig in (signal.SIGTERM, signal.SIGINT)))
    if own_ending or (status > 0 and not _LOST_SIGNS.search(text)):
        for line in held:
            _write_stderr(line)
        os.unlink(log.name)
        return status
    print(f'error: {lost_message(text, status, process_id, num_processes, _keep_log(log.name, workdir, process_id))}',
          file=sys.stderr, flush=True)
    return LOST_PROCESS


def _watch(child: subprocess.Popen, beats: int, take, stall_s: int) -> bool:
    """Passes the child's stderr to ``take`` line by line until it ends, and hears its beats; ends
    the child's process group when it has been silent for ``stall_s`` seconds since its last beat
    (from its first one on). Returns whether it did."""
    assert child.stderr is not None  # started with stderr=PIPE
    stderr, pending, stalled, drained_by = child.stderr.fileno(), b'', False, 0.0
    last_beat: float | None = None
    wait: float | None
    with selectors.DefaultSelector() as selector:
        selector.register(stderr, selectors.EVENT_READ)
        selector.register(beats, selectors.EVENT_READ)
        while True:
            if stalled:  # its stderr ends with it; a few seconds for the last lines
                wait = max(0.0, drained_by - time.monotonic())
            else:
                wait = None if last_beat is None or not stall_s else max(0.0, last_beat + stall_s - time.monotonic())
            ready = [key.fd for key, _ in selector.select(wait)]
            if not ready and wait is not None:
                if stalled:  # something outside its process group holds its stderr: stop listening
                    return stalled
                stalled, drained_by = True, time.monotonic() + _DRAIN_S
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                continue
            if beats in ready:
                if not os.read(beats, 4096):
                    selector.unregister(beats)  # the child (and every holder of the pipe) is gone
                elif not stalled:
                    last_beat = time.monotonic()
            if stderr in ready:
                chunk = os.read(stderr, 65536)
                *lines, pending = (pending + chunk).split(b'\n')
                for line in lines:
                    take(line + b'\n')
                if not chunk:
                    if pending:
                        take(pending)
                    return stalled


def stall_message(stall_s: int, process_id: int | None, num_processes: int | None, log: str) -> str:
    """The one line of a process whose training made no progress for ``stall_s`` seconds and was ended."""
    me = f'process {process_id}' if process_id is not None else 'this process'
    of = f' of {num_processes}' if num_processes else ''
    return (f'the run stopped moving: {me}{of} made no progress (no step, evaluation batch or save finished) '
            f'for {stall_s} s (--stall-timeout), so it stopped; a process of the run is alive but stuck '
            '(in its own code, or in a collective that the others never joined); the last complete checkpoint '
            f'is kept: run the same commands again, on every process, to resume (details: {log})')


def lost_message(text: bytes, status: int, process_id: int | None, num_processes: int | None, log: str) -> str:
    """The one line of a process whose run lost a process, from its child's stderr ``text`` and exit
    ``status`` (negative: the signal that ended it)."""
    lost = lost_processes(text)
    me = f'process {process_id}' if process_id is not None else 'this process'
    of = f' of {num_processes}' if num_processes else ''
    if process_id in lost:  # the others heard nothing from this one for too long (stopped, cut off)
        what = f'{me}{of} was reported lost (silent for longer than --heartbeat-timeout) and stopped'
    elif lost:
        what = f'lost process {", ".join(map(str, lost))}{of} (it died or stopped answering), so {me} stopped'
    elif not _LOST_SIGNS.search(text):  # no word from JAX: the training itself ended abnormally
        what = f'{me}{of} ended abnormally ({_how(status)})'
    elif process_id not in (None, 0):  # the coordination service itself is gone with process 0
        what = f'lost process 0{of}, the coordinator (it died or stopped answering), so {me} stopped'
    else:
        what = f'lost another process{of} (it died or stopped answering), so {me} stopped'
    return (f'{what}; the last complete checkpoint is kept: run the same commands again, on every process, '
            f'to resume (details: {log})')


def lost_processes(text: bytes) -> list[int]:
    """The process numbers JAX's distributed service reports as lost in ``text``, in order."""
    found = []
    for pattern in _TASK_LOST:
        for match in pattern.finditer(text):
            found += [int(n) for n in re.findall(rb'\d+', match.group(1)) if int(n) not in found]
    return found


def _how(status: int) -> str:
    if status < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-status).name
        return f'signal {-status}'
    return f'status {status}'


def _keep_log(path: str, workdir: str, process_id: int | None) -> str:
    """The child's stderr moved into the run's directory, when there is one (a start that failed
    early leaves none, and none is made for a log); else where it is."""
    if not os.path.isdir(workdir):
        return path
    # Auto-detected processes (--distributed) do not know their number before JAX starts: host and pid.
    target = process_log_path(workdir, process_id if process_id is not None else f'-{socket.gethostname()}-{os.getpid()}')
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.move(path, target)
    except OSError:
        return path
    return target


def _write_stderr(line: bytes) -> None:
    sys.stderr.buffer.write(line)
    sys.stderr.buffer.flush()
