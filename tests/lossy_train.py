"""scripts/train.py with two test hooks, for tests/test_lost_process.py.

    CNNZOO_TEST_KILL_IN_SAVE=N python tests/lossy_train.py --config ... [train's arguments]
    CNNZOO_TEST_HANG_AFTER_STEPS=N python tests/lossy_train.py --config ... [train's arguments]

The process that trains (the supervised child of a multi-process run) SIGKILLs itself inside the
save of checkpoint N: once orbax has started writing it in the background, before it is complete.
Or it hangs, alive, once it has dispatched N steps: its main thread sleeps while JAX's threads go
on answering the distributed service's heartbeats (a deadlock in its own code, as the others see it).
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


if __name__ == '__main__':
    if os.environ.get('CNNZOO_TEST_KILL_IN_SAVE') and is_supervised_child():
        kill_inside_save(int(os.environ['CNNZOO_TEST_KILL_IN_SAVE']))
    if os.environ.get('CNNZOO_TEST_HANG_AFTER_STEPS') and is_supervised_child():
        hang_after(int(os.environ['CNNZOO_TEST_HANG_AFTER_STEPS']))
    sys.exit(train_main(sys.argv[1:]))
