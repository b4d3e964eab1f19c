"""A stop signal to a two-process run in every phase: while the first step compiles, as a step
starts, inside an evaluation batch (of an evaluation at a step, and of one run again on resume), as a
checkpoint is saved; to both processes and to one only (issue 28). Every time both processes exit
143, after the same step (a collective that one process left and the other did not would hang them
both), and the run, resumed after each stop, ends bitwise where the uninterrupted run ends.

Processes of 2 CPU devices each, joined on 127.0.0.1; the signal goes to each signalled process's
supervising parent, as a scheduler's does, from the hooks of tests/lossy_train.py. The time from the
signal to both processes' exit is printed (pytest -s) and bounded by BOUND_S.
"""

import os
import re
import time

import numpy as np
import pytest
from test_scale import _launch
from tiny_run import PROCESSES, free_port, tiny_overrides

pytestmark = pytest.mark.xdist_group(PROCESSES)  # see tiny_run.PROCESSES

LOSSY = os.path.join(os.path.dirname(__file__), 'lossy_train.py')
WORKER = os.path.join(os.path.dirname(__file__), 'distributed_worker.py')
SETTINGS = {'training.checkpoint_every_steps': '4', 'training.log_every_steps': '5'}  # 30 steps, evaluations at 10, 20, 30
BOUND_S = 30  # from the signal to both exits; measured: a few seconds (README, "Stopping a run")

# (phase, the processes signalled), one start after the other on the same workdir: each start resumes
# where the one before stopped.
SCENARIOS = [
    ('compile', (0, 1)),  # while the first step compiles: nothing to save
    ('step:3', (1,)),  # process 1 alone, as step 3 starts
    ('eval:1', (0, 1)),  # inside the second of the 4 batches of the evaluation of step 10
    ('eval:2', (0,)),  # process 0 alone, inside the evaluation of step 10 run again on resume
    ('save:16', (0, 1)),  # as checkpoint 16 is saved
]


def start(workdir, overrides, *, stop_in=None, signalled=(), params=None):
    """Both processes of the run; ``signalled`` ones stop themselves in ``stop_in``; with ``params``,
    through tests/distributed_worker.py, which saves process i's parameters to ``params``-i.npz."""
    port = free_port()
    return [_launch([WORKER, f'{params}-{i}.npz'] if params else [LOSSY], workdir, overrides, port, i,
                    env={'CNNZOO_TEST_STOP_IN': stop_in} if i in signalled else None)
            for i in range(2)]


def latest_checkpoint(workdir):
    steps = [int(name) for name in os.listdir(workdir / 'checkpoints') if name.isdigit()] \
        if (workdir / 'checkpoints').is_dir() else []
    return max(steps, default=None)


@pytest.mark.slow  # seven starts of two processes
def test_a_stop_in_every_phase_is_agreed_by_both_processes_and_the_run_resumes_bitwise(tiny_cifar10, cache_dir,
                                                                                        tmp_path):
    overrides = tiny_overrides(tiny_cifar10, cache_dir, **SETTINGS)
    whole = start(tmp_path / 'whole', overrides, params=tmp_path / 'whole')
    outputs = [proc.communicate(timeout=600)[0] for proc in whole]
    assert [proc.returncode for proc in whole] == [0, 0], outputs

    workdir, stopped_at = tmp_path / 'stopped', []
    for phase, signalled in SCENARIOS:
        procs = start(workdir, overrides, stop_in=phase, signalled=signalled)
        outputs = [proc.communicate(timeout=600)[0] for proc in procs]
        ended = time.time()
        sent = [float(t) for out in outputs for t in re.findall(r'test: SIGTERM sent at ([\d.]+)', out)]
        assert [proc.returncode for proc in procs] == [143, 143], (phase, signalled, outputs)
        assert len(sent) == len(signalled), outputs
        assert not any('Traceback' in out for out in outputs), outputs
        step = int(re.search(r'stopped by SIGTERM at step (\d+)', outputs[0]).group(1))
        kept = latest_checkpoint(workdir)
        print(f'{phase} to process(es) {signalled}: stopped at step {step}, checkpoint {kept}, both out '
              f'{ended - min(sent):.1f} s after the signal')
        assert ended - min(sent) < BOUND_S
        if phase == 'compile':
            assert step == 0 and kept is None  # nothing ran: nothing to save
        else:
            assert kept == step  # both saved the step they stopped after
        stopped_at.append(step)
    assert stopped_at[2] == 10 and stopped_at[3] == 10  # the evaluation cut short is run again, and cut again
    assert stopped_at == sorted(stopped_at)

    final = start(workdir, overrides, params=tmp_path / 'resumed')
    outputs = [proc.communicate(timeout=600)[0] for proc in final]
    assert [proc.returncode for proc in final] == [0, 0], outputs
    assert f'resuming at step {stopped_at[-1]}' in outputs[0]
    for i in range(2):  # each process's copies of the final parameters, bitwise the uninterrupted run's
        resumed, reference = np.load(tmp_path / f'resumed-{i}.npz'), np.load(tmp_path / f'whole-{i}.npz')
        assert sorted(resumed.files) == sorted(reference.files)
        for key in reference.files:
            np.testing.assert_array_equal(resumed[key], reference[key], err_msg=key)
