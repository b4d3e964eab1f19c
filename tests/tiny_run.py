"""Tiny runs for the end-to-end tests: a ResNet-8 (resnet20 with one block per stage) on a 200-image
archive, 10 steps per epoch, 3 epochs; the command line and in-process forms of the same run."""

import os
import signal
import socket
import subprocess
import sys

import chex
import flax.serialization

from cnnzoo.config import apply_overrides, load_config_file
from cnnzoo.run.checkpoints import Checkpoints
from cnnzoo.run.setup import build

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'scripts', 'train.py')
EXPERIMENT = os.path.join(ROOT, 'experiments', 'resnet20_cifar10.py')
TOTAL_STEPS = 30  # 200 images / batch 20 = 10 steps per epoch, 3 epochs


def tiny_overrides(archive, cache_dir, **extra):
    overrides = {
        'data.source': 'archive', 'data.archive': archive, 'data.data_dir': cache_dir,
        'model.stage_sizes': '(1, 1, 1)', 'training.batch_size': '20', 'training.num_epochs': '3',
        'training.eval_batch_size': '16', 'training.checkpoint_every_steps': '4',
        'training.log_every_steps': '1', 'training.progress_bar': 'False', 'optimizer.learning_rate': '0.05',
    }
    overrides.update(extra)
    return list(overrides.items())


# The tests that start runs of several processes joined on 127.0.0.1 share one pytest-xdist group
# ('processes', with --dist loadgroup in pyproject.toml): they run one after another in one worker.
# Two of them at once, one per worker, put four training processes and their supervisors on two
# cores, and their coordinators' ports, each free when chosen, could meet; in one suite run both
# multi-process tests then waited the whole 600 s of their timeout (test_stops' last resume and
# test_lost_process's), while either alone passes in 1-2 minutes.
PROCESSES = 'processes'


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now (for a two-process run's coordinator)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def process_command(command, workdir, overrides, port, process_id, *extra) -> list[str]:
    """The command line of process ``process_id`` of a two-process run of the tiny experiment joined
    on 127.0.0.1:``port``: ``command`` (a script and its own arguments), train's flags and ``extra``,
    then the ``(key, value)`` overrides."""
    return [sys.executable, *command, '--config', EXPERIMENT, '--workdir', str(workdir), *extra,
            '--coordinator', f'127.0.0.1:{port}', '--num-processes', '2', '--process-id', str(process_id),
            *[f'--config.{k}={v}' for k, v in overrides]]


def tiny_config(archive, cache_dir, **extra):
    return apply_overrides(load_config_file(EXPERIMENT), tiny_overrides(archive, cache_dir, **extra))


def run_script(workdir, overrides, *, signal_at_step=None, sig=signal.SIGKILL):
    """Runs scripts/train.py; with ``signal_at_step``, sends ``sig`` once that step is logged."""
    cmd = [sys.executable, TRAIN, '--config', EXPERIMENT, '--workdir', str(workdir)]
    cmd += [f'--config.{k}={v}' for k, v in overrides]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if signal_at_step is not None and line.startswith(f'step {signal_at_step}/'):
            proc.send_signal(sig)
            signal_at_step = None
    proc.wait(timeout=300)
    return proc.returncode, ''.join(lines)


def restore(config, workdir, which='latest'):
    setup = build(config)
    ckpts = Checkpoints(str(workdir), keep=2)
    restored = ckpts.restore(setup.state, which)
    ckpts.close()
    return restored.state


def assert_bitwise_equal(a, b):
    """The same tree structure, and every leaf the same shape, dtype and bits.

    States are compared as their state dicts: two builds' TrainStates hold different (unequal) optimizer
    closures and bound ``apply`` methods among their static fields, which are not the state."""
    chex.assert_trees_all_equal(flax.serialization.to_state_dict(a), flax.serialization.to_state_dict(b),
                                strict=True)
