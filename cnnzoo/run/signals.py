"""Stop signals: SIGTERM and SIGINT end a run at a step boundary, after a checkpoint.

:class:`StopSignals` records the first signal (a second one acts as the default would); the loop
looks at it between steps. A compilation or an evaluation batch can take tens of seconds, so the
loop runs those through :func:`interruptible`, which returns to the main thread (where Python runs
signal handlers) as soon as a signal arrives. In a multi-process run the processes agree on the
signal at agreed points (:mod:`cnnzoo.run.control`), so all of them save the same step.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time


class StopSignals:
    """SIGTERM/SIGINT set :attr:`received` (the signal's name); the loop saves and returns at the next
    step boundary, or within a fraction of a second when it is waiting on a compilation or an
    evaluation (:func:`interruptible`). A second signal acts as it would without this handler.

    Entered while another is active (a run inside a sweep), it is that one: the first signal stops
    the run at a step boundary, and the sweep, seeing the same flag, starts nothing more.
    """

    _active: StopSignals | None = None
    # A repeat within this many seconds of the first signal is the same stop (0: none is). Set in the
    # training half of a multi-process run's process (cnnzoo.run.supervise): a scheduler that signals
    # every process reaches it twice, directly and through its parent.
    same_stop_within_s: float = 0.0

    def __init__(self):
        self.received: str | None = None
        self._previous = {}
        self._outer = None
        self._first_at = 0.0

    def __enter__(self) -> StopSignals:  # noqa: PYI034 - the outer instance where one is active
        if StopSignals._active is not None:
            self._outer = StopSignals._active
            return self._outer
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        StopSignals._active = self
        return self

    def _handle(self, signum, frame):
        first = self.received is None
        if first:
            self.received, self._first_at = signal.Signals(signum).name, time.monotonic()
        if self.same_stop_within_s:
            if first or time.monotonic() - self._first_at < self.same_stop_within_s:
                return  # the first signal, or the same stop again by another way
            signal.signal(signum, self._previous[signum])
            signal.raise_signal(signum)  # a later one acts as usual
            return
        signal.signal(signum, self._previous[signum])  # a second signal acts as usual

    def __exit__(self, *exc):
        if self._outer is not None:
            self._outer = None
            return
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        StopSignals._active = None


class Stopped(Exception):
    """A stop signal arrived while :func:`interruptible` was waiting."""


def interruptible(fn, signals: StopSignals):
    """``fn()``, run in a helper thread so that the main thread, where Python runs signal handlers,
    stays responsive: a compilation or an evaluation batch can take tens of seconds, and a stop
    signal must not wait for it. Raises :class:`Stopped` when a signal arrives first (``fn`` is then
    abandoned: its result is never used, and the process is about to end)."""
    result = {}

    def work():
        try:
            result['value'] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            result['error'] = e

    worker = threading.Thread(target=work, daemon=True, name='cnnzoo-step')
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
        if signals.received and worker.is_alive():
            atexit.register(_exit_before_worker_is_torn_down, worker, signals.received)
            raise Stopped(signals.received)
    if 'error' in result:
        raise result['error']
    return result['value']


def _exit_before_worker_is_torn_down(worker: threading.Thread, signal_name: str) -> None:
    """At interpreter exit, a thread still inside XLA (an abandoned compilation) aborts the process
    when Python tears it down. Ending the process first, with the status a stop signal gives
    (128 + its number), is the clean exit: every file of the run was closed before."""
    if worker.is_alive():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signal.Signals[signal_name].value)
