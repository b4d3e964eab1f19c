"""scripts/train.py with one test hook, for tests/test_lost_process.py.

    CNNZOO_TEST_KILL_IN_SAVE=N python tests/lossy_train.py --config ... [train's arguments]

The process that trains (the supervised child of a multi-process run) SIGKILLs itself inside the
save of checkpoint N: once orbax has started writing it in the background, before it is complete.
"""

import os
import signal
import sys

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


if __name__ == '__main__':
    if os.environ.get('CNNZOO_TEST_KILL_IN_SAVE') and is_supervised_child():
        kill_inside_save(int(os.environ['CNNZOO_TEST_KILL_IN_SAVE']))
    sys.exit(train_main(sys.argv[1:]))
