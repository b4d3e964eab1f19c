"""scripts/train.py with test hooks, for tests/test_lost_process.py and tests/test_stops.py.

    CNNZOO_TEST_KILL_IN_SAVE=N python tests/lossy_train.py --config ... [train's arguments]
    CNNZOO_TEST_HANG_AFTER_STEPS=N python tests/lossy_train.py --config ... [train's arguments]
    CNNZOO_TEST_STOP_IN=PHASE python tests/lossy_train.py --config ... [train's arguments]

The process that trains (the supervised child of a multi-process run) SIGKILLs itself inside the
save of checkpoint N: once orbax has started writing it in the background, before it is complete.
Or it hangs, alive, once it has dispatched N steps: its main thread sleeps while JAX's threads go
on answering the distributed service's heartbeats (a deadlock in its own code, as the others see it).
Or, in PHASE, it sends SIGTERM to its supervising parent, as a scheduler stopping the run does (the
parent forwards it): ``compile`` (while the first step compiles), ``step:N`` (as step N's input is
taken), ``eval:I`` (inside the I-th evaluation batch, counted from 0, of this start), ``save:N``
(as checkpoint N is saved). It writes ``test: SIGTERM sent at T`` (T: time.time()) to stderr.
"""

import os
import signal
import sys
import time

from cnnzoo.cli.train import train_main
from cnnzoo.run.supervise import is_supervised_child


def kill_inside_save(step: int) -> None:
    """Makes this process SIGKILL itself once the save of checkpoint ``step`` has started."""
    import orbax.checkpoint as ocp

    real_save = ocp.CheckpointManager.save

    def save(self, at, *args, **kwargs):
        saved = real_save(self, at, *args, **kwargs)
        if at == step and os.path.basename(str(self.directory)) == 'checkpoints':
            os.kill(os.getpid(), signal.SIGKILL)
        return saved

    ocp.CheckpointManager.save = save


def hang_after(steps: int) -> None:
    """Makes this process's main thread sleep for good once it has dispatched ``steps`` steps."""
    from cnnzoo.run import loop

    real_add, added = loop.InFlight.add, [0]

    def add(self, outputs):
        added[0] += 1
        if added[0] == steps:
            print(f'hanging after {steps} steps', file=sys.stderr, flush=True)
            time.sleep(24 * 3600)
        return real_add(self, outputs)

    loop.InFlight.add = add


def stop_in(phase: str) -> None:
    """Makes this process send SIGTERM to its supervising parent in ``phase`` (see the docstring)."""
    from cnnzoo.run import loop
    from cnnzoo.run.checkpoints import Checkpoints
    from cnnzoo.run.control import RunControl

    kind, _, number = phase.partition(':')
    n = int(number or 0)

    def stop(pause: float = 0.0) -> None:
        print(f'test: SIGTERM sent at {time.time():.3f}', file=sys.stderr, flush=True)
        os.kill(os.getppid(), signal.SIGTERM)
        time.sleep(pause)  # the phase goes on while the signal arrives

    if kind == 'compile':
        real_compile = RunControl.compile

        def compile_then_stop(self, compile_fn):
            return real_compile(self, lambda: (stop(1.0), compile_fn())[1])

        RunControl.compile = compile_then_stop
    elif kind == 'step':
        real_make_feed = loop.make_feed

        def make_feed(*args, **kwargs):
            feed = real_make_feed(*args, **kwargs)
            real_next = feed.next

            def next_input(step):
                if step == n:
                    stop()
                return real_next(step)

            feed.next = next_input
            return feed

        loop.make_feed = make_feed
    elif kind == 'eval':
        real_run_batch, batches = RunControl.run_batch, [0]

        def run_batch(self, fn):
            batches[0] += 1
            if batches[0] - 1 == n:
                return real_run_batch(self, lambda: (stop(0.5), fn())[1])
            return real_run_batch(self, fn)

        RunControl.run_batch = run_batch
    elif kind == 'save':
        real_save = Checkpoints.save

        def save(self, state, **kwargs):
            if int(state.step) == n:
                stop()
            return real_save(self, state, **kwargs)

        Checkpoints.save = save
    else:
        raise SystemExit(f'CNNZOO_TEST_STOP_IN={phase}: unknown phase')


if __name__ == '__main__':
    if os.environ.get('CNNZOO_TEST_STOP_IN') and is_supervised_child():
        stop_in(os.environ['CNNZOO_TEST_STOP_IN'])
    if os.environ.get('CNNZOO_TEST_KILL_IN_SAVE') and is_supervised_child():
        kill_inside_save(int(os.environ['CNNZOO_TEST_KILL_IN_SAVE']))
    if os.environ.get('CNNZOO_TEST_HANG_AFTER_STEPS') and is_supervised_child():
        hang_after(int(os.environ['CNNZOO_TEST_HANG_AFTER_STEPS']))
    sys.exit(train_main(sys.argv[1:]))
