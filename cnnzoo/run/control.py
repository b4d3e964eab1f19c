"""What the loop asks at its boundaries: whether to stop, the same answer in every process of a run;
and the beats a supervising parent listens for (:mod:`cnnzoo.run.supervise`).

A stop signal (:class:`cnnzoo.run.signals.StopSignals`) takes effect only where every process
agrees, never by one process leaving a collective computation that the others are still in (an
abandoned evaluation batch in one process left the other waiting in it for ever: issue 28):

- **Steps.** Every train step takes this process's stop flag (:meth:`RunControl.flags`: the number of
  the signal it has received, 0 for none, on each of its devices) and returns the largest over all
  devices as its output ``'stop'``. The loop waits for the step before the last anyway (at most two
  steps in flight): that step's flag is the same in every process, so all of them stop after the
  same step, and save it. No extra communication: the flag rides in the step's own program.
- **Evaluation batches.** The same, batch by batch: a stop cuts the evaluation short after the same
  batch in every process (it is run again when the run resumes).
- **The first step's compilation** can take minutes and involves no other process, so a stop
  abandons it at once; the processes then agree once, with one all-gather, before any of them runs
  a step.
- **Saves** start only at a step boundary that every process reached with the same answer, and
  finish (orbax's barriers) before a process leaves.

A run of one process asks nothing of the others: a stop takes effect at the next step boundary, and
a compilation or an evaluation batch is abandoned at once (:func:`cnnzoo.run.signals.interruptible`).
"""

from __future__ import annotations

import signal

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from cnnzoo.run.signals import Stopped, StopSignals, interruptible
from cnnzoo.run.supervise import beat


def _name(number: int) -> str | None:
    return signal.Signals(number).name if number else None


def _number(name: str | None) -> int:
    return signal.Signals[name].value if name else 0


def stop_flags(mesh, number: int = 0) -> jax.Array:
    """A (devices,) int32 array split over every device of ``mesh``, whose parts on this process's
    devices hold ``number``: a step's input that says which signal (0: none) this process received."""
    devices = mesh.devices.size
    sharding = NamedSharding(mesh, P(mesh.axis_names))

    def part(index: tuple[slice, ...] | None) -> np.ndarray:
        assert index is not None  # jax's stubs allow None; a sharded array's part always has an index
        return np.full(len(range(devices)[index[0]]), number, np.int32)

    return jax.make_array_from_callback((devices,), sharding, part)


class RunControl:
    """The stop and the beats of one run, on the run's ``mesh`` (see the module docstring)."""

    def __init__(self, signals: StopSignals, mesh):
        self.signals, self.mesh = signals, mesh
        self.agreeing = jax.process_count() > 1  # several processes must agree on a stop
        self._flags: dict[int, jax.Array] = {}

    def flags(self) -> jax.Array:
        """This process's stop flag as a step's input: a (devices,) int32 array, split over every
        device of the mesh, whose parts on this process's devices hold the number of the signal this
        process has received (0: none). Made once per value."""
        number = _number(self.signals.received)
        if number not in self._flags:
            self._flags[number] = stop_flags(self.mesh, number)
        return self._flags[number]

    def compile(self, compile_fn) -> str | None:
        """Runs ``compile_fn`` (the first step's compilation), abandoned at once by a stop signal;
        several processes then agree whether to stop. Returns the stop the run takes here, if any.

        A stop that came before does not start it: an abandoned compilation runs on in its thread
        until XLA finishes (seconds to minutes of a core), which matters where the process lives on,
        as a notebook's kernel does."""
        if not self.signals.received:
            try:
                interruptible(compile_fn, self.signals)
            except Stopped as stopped:
                if not self.agreeing:
                    return str(stopped)
        if not self.agreeing:
            return self.signals.received
        from jax.experimental import multihost_utils

        return _name(int(np.max(multihost_utils.process_allgather(np.int32(_number(self.signals.received))))))

    def after_step(self, finished: dict | None) -> str | None:
        """At a step boundary: the stop the run takes here, if any (a signal's name). ``finished``:
        the outputs of the step the loop has just waited for (None: none yet)."""
        beat()  # that step has finished
        if not self.agreeing:
            return self.signals.received
        return _name(int(np.asarray(finished['stop']))) if finished is not None else None

    def run_batch(self, fn):
        """``fn()``, an evaluation batch whose outputs hold its ``'stop'`` flag: raises
        :class:`Stopped` when the run stops at this batch."""
        if not self.agreeing:
            out = interruptible(fn, self.signals)
        else:
            out = fn()
            number = int(np.asarray(jax.device_get(out['stop'])))
            if number:
                raise Stopped(_name(number))
        beat()
        return out

    def after_evaluation(self, stopped: Stopped | None) -> str | None:
        """After an evaluation (``stopped``: how a stop cut it short, if one did): the stop the run
        takes before its next step, if any."""
        if stopped is not None:
            return str(stopped)
        return None if self.agreeing else self.signals.received

    @staticmethod
    def beat() -> None:
        """A save or another piece of work finished: the run moved on."""
        beat()
