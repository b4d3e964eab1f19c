"""Scale: the same run on 4 simulated CPU devices, checkpoints moving between device counts, two
processes joined by jax.distributed (gloo on 127.0.0.1), and several seeds in one vmapped program.

A process's device count is fixed when JAX starts, so the several-device runs are subprocesses
(``--xla_force_host_platform_device_count=N``); the 1-device runs are this process's own.

Tolerance. The data-parallel step computes the same mathematics as the one-device step (the batch
is split over a ``data`` mesh axis; BatchNorm's statistics and the gradient are reductions over the
global batch), but XLA sums in another order. After one step the parameters agree to a relative
difference of about 1e-9. A tiny BatchNorm network trained at a small batch then amplifies such
differences, step after step (a unit whose input sits near a ReLU's kink switches sides): on an
earlier machine the relative difference of all parameters after 20 steps was 2e-4 to 4e-3
depending on the run's settings, with every step's loss equal to 2-3 decimals. The tests allow 1e-6
after one step and 2e-2 at the end (``rel_diff``, the norm of the difference over the norm of the
parameters); a per-device BatchNorm or a lost gradient shard already changes the first step's loss
by whole percents. Measured on the suite's tiny archive at 10 steps (results/cpu/scale/tolerances.log,
the -O0 suite's flags): 1.4e-9 after one step and 4.4e-6 after 10 (4 devices against 1), 2.0e-6 (two
processes killed and resumed, against one 4-device process), 4.3e-6 and 2.6e-9 (checkpoints moved
between one device and two processes); at 20 steps (``git show 2aa69a3:results/cpu/scale/tolerances.log``):
7e-5 and 6e-5. Each replica of several seeds in one program is an unrolled copy of the one-seed program on
the CPU and measured 0 against its own run; on a GPU the replicas are vmapped, batched convolutions
add in another order, and the same tolerance serves. Their initialisation is bitwise that of their
single runs.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest
from conftest import env_with_devices
from tiny_run import (
    EXPERIMENT,
    PROCESSES,
    TRAIN,
    free_port,
    process_command,
    tiny_config,
    tiny_overrides,
)

from cnnzoo.run.checkpoints import Checkpoints
from cnnzoo.run.loop import train_and_evaluate
from cnnzoo.run.setup import build

STEPS, HALF = 10, 5
SETTINGS = {'training.batch_size': '40', 'optimizer.learning_rate': '0.01', 'training.num_steps': str(STEPS),
            'training.checkpoint_every_steps': str(HALF), 'training.log_every_steps': '1',
            'training.eval_every_epochs': '1'}  # at the checkpoints (5 steps an epoch)
ONE_STEP, ALL_STEPS = 1e-6, 2e-2
TWO_STEPS = {**SETTINGS, 'training.num_steps': '2', 'training.checkpoint_every_steps': '1'}


def rel_diff(a, b) -> float:
    """||a - b|| / ||a|| over every leaf of two parameter trees."""
    pairs = list(zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))
    num = sum(float(np.sum((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2)) for x, y in pairs)
    return (num / sum(float(np.sum(np.asarray(x, np.float64) ** 2)) for x, _ in pairs)) ** 0.5


def train_on_devices(devices: int, workdir, overrides) -> str:
    """scripts/train.py in a process with ``devices`` simulated CPU devices; returns its output."""
    env = env_with_devices(devices)
    cmd = [sys.executable, TRAIN, '--config', EXPERIMENT, '--workdir', str(workdir)]
    result = subprocess.run(cmd + [f'--config.{k}={v}' for k, v in overrides], env=env, capture_output=True,
                            check=False, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def params_at(config, workdir, step=None):
    """The parameters of a one-seed run's checkpoint."""
    ckpts = Checkpoints(str(workdir), keep=2)
    try:
        return ckpts.restore(build(config).state, 'latest' if step is None else step).state.params
    finally:
        ckpts.close()


def rewind(source, target, step: int):
    """A copy of run ``source`` as a kill right after checkpoint ``step`` would have left it."""
    shutil.copytree(source, target)
    for name in os.listdir(target / 'checkpoints'):
        if name.isdigit() and int(name) > step:
            shutil.rmtree(target / 'checkpoints' / name)


@pytest.fixture(scope='module')
def scale_config(tiny_cifar10, cache_dir):
    """The runs of this module: ``STEPS`` steps of the tiny run at batch 40, checkpoints at ``HALF`` and ``STEPS``."""
    return tiny_config(tiny_cifar10, cache_dir, **SETTINGS)


@pytest.fixture(scope='module')
def one_device(scale_config, tmp_path_factory):
    """The run on this process's one device."""
    workdir = tmp_path_factory.mktemp('one')
    train_and_evaluate(scale_config, str(workdir))
    return workdir


@pytest.fixture(scope='module')
def four_devices(tiny_cifar10, cache_dir, tmp_path_factory):
    """The same run on 4 devices (a subprocess)."""
    workdir = tmp_path_factory.mktemp('four')
    out = train_on_devices(4, workdir, tiny_overrides(tiny_cifar10, cache_dir, **SETTINGS))
    assert '4 cpu device(s)' in out
    return workdir


@pytest.fixture(scope='module')
def four_devices_two_steps(tiny_cifar10, cache_dir, tmp_path_factory):
    """The first two steps of the run on 4 devices, a checkpoint after each: the fast lane's run on
    several devices (a subprocess's start and compilations are most of its time)."""
    workdir = tmp_path_factory.mktemp('four_short')
    out = train_on_devices(4, workdir, tiny_overrides(tiny_cifar10, cache_dir, **TWO_STEPS))
    assert '4 cpu device(s)' in out
    return workdir


@pytest.mark.slow  # two more runs; a 4-device checkpoint resuming on one is in the fast lane
def test_four_devices_train_the_one_device_run(scale_config, one_device, four_devices, tiny_cifar10, cache_dir,
                                               tmp_path):
    diff = rel_diff(params_at(scale_config, one_device), params_at(scale_config, four_devices))
    print(f'4 devices against 1, {STEPS} steps: relative parameter difference {diff:.2e}')
    assert diff < ALL_STEPS
    # The first step, separately: the split batch is the same batch (global BatchNorm statistics).
    one_step = {**SETTINGS, 'training.num_steps': '1'}
    train_and_evaluate(tiny_config(tiny_cifar10, cache_dir, **one_step), str(tmp_path / 'one'))
    train_on_devices(4, tmp_path / 'four', tiny_overrides(tiny_cifar10, cache_dir, **one_step))
    first = tiny_config(tiny_cifar10, cache_dir, **one_step)
    diff = rel_diff(params_at(first, tmp_path / 'one'), params_at(first, tmp_path / 'four'))
    print(f'4 devices against 1, one step: relative parameter difference {diff:.2e}')
    assert diff < ONE_STEP


def test_a_checkpoint_of_four_devices_resumes_on_one(tiny_cifar10, cache_dir, four_devices_two_steps, tmp_path):
    """A 4-device run's checkpoint of step 1 resumed on one device to step 2: the 4-device run's
    own end, to the tolerance of one step (the module's runs of 10 steps, the 4-device one resumed
    on one device, two processes and back: the slow tests)."""
    config = tiny_config(tiny_cifar10, cache_dir, **TWO_STEPS)
    rewind(four_devices_two_steps, tmp_path / 'run', 1)
    summary = train_and_evaluate(config, str(tmp_path / 'run'))
    assert summary['step'] == 2
    assert rel_diff(params_at(config, four_devices_two_steps), params_at(config, tmp_path / 'run')) < ONE_STEP


@pytest.mark.slow  # ten steps of 4 devices resumed on one at step 5: the fast lane's is the test above
def test_a_ten_step_checkpoint_of_four_devices_resumes_on_one(scale_config, four_devices, tmp_path):
    """The 4-device run from its checkpoint of step ``HALF`` to the end on one device: the 4-device
    run's own end (that 4 devices train the 1-device run is test_four_devices_train_the_one_device_run)."""
    rewind(four_devices, tmp_path / 'run', HALF)
    summary = train_and_evaluate(scale_config, str(tmp_path / 'run'))
    assert summary['step'] == STEPS
    assert rel_diff(params_at(scale_config, four_devices), params_at(scale_config, tmp_path / 'run')) < ALL_STEPS


@pytest.mark.slow  # the other direction is in the fast lane
def test_a_checkpoint_of_one_device_resumes_on_four(scale_config, one_device, tiny_cifar10, cache_dir, tmp_path):
    config = scale_config
    rewind(one_device, tmp_path / 'run', HALF)
    out = train_on_devices(4, tmp_path / 'run', tiny_overrides(tiny_cifar10, cache_dir, **SETTINGS))
    assert f'resuming at step {HALF}' in out and '4 cpu device(s)' in out
    assert rel_diff(params_at(config, one_device), params_at(config, tmp_path / 'run')) < ALL_STEPS


def _launch(command, workdir, overrides, port, process_id, *extra, env=None):
    """Process ``process_id`` of a two-process run, with 2 simulated devices; stdout and stderr together."""
    return subprocess.Popen(process_command(command, workdir, overrides, port, process_id, *extra),
                            env=env_with_devices(2, **(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.xdist_group(PROCESSES)  # see tiny_run.PROCESSES
@pytest.mark.slow  # four processes of about 20 s each on two cores
def test_two_processes_killed_and_restarted_finish_the_four_device_run(scale_config, one_device, four_devices,
                                                                       tiny_cifar10, cache_dir, tmp_path):
    config = scale_config
    overrides = tiny_overrides(tiny_cifar10, cache_dir, **{**SETTINGS, 'training.checkpoint_every_steps': '2'})
    workdir = tmp_path / 'run'
    port = free_port()
    first = [_launch([TRAIN], workdir, overrides, port, i) for i in range(2)]
    for line in first[0].stdout:  # process 0 prints; both are killed once step 7 is logged
        if line.startswith('step 7/'):
            break
    for proc in first:
        proc.kill()
    outputs = [proc.communicate(timeout=60)[0] for proc in first]
    assert not any(line.startswith('step ') for line in outputs[1].splitlines()), outputs[1]

    worker = os.path.join(os.path.dirname(__file__), 'distributed_worker.py')
    port = free_port()
    second = [_launch([worker, str(tmp_path / f'params{i}.npz')], workdir, overrides, port, i) for i in range(2)]
    outputs = [proc.communicate(timeout=600)[0] for proc in second]
    assert [proc.returncode for proc in second] == [0, 0], outputs
    assert re.search(r'resuming at step [46]', outputs[0]), outputs[0]

    copies = [np.load(tmp_path / f'params{i}.npz') for i in range(2)]
    keys = sorted(copies[0].files)
    assert keys == sorted(copies[1].files) and keys
    for key in keys:  # each process's two device copies, and the other process's: the same bits
        for other in (copies[0][f'{key.split("_")[0]}_0'], copies[1][key]):
            np.testing.assert_array_equal(copies[0][key], other)
    four = jax.tree_util.tree_leaves(params_at(config, four_devices))
    mine = [copies[0][f'{i}_0'] for i in range(len(four))]
    diff = rel_diff(four, mine)
    print(f'2 processes x 2 devices, killed and resumed, against 1 process x 4 devices: {diff:.2e}')
    assert diff < ALL_STEPS

    records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
    train_steps = [r['step'] for r in records if r['split'] == 'train']
    assert train_steps == list(range(1, STEPS + 1))  # process 0 alone wrote, and nothing twice
    assert sorted(os.listdir(workdir / 'checkpoints'), key=int) == ['8', '10']

    # The two processes' checkpoint of step 8, resumed by one process with one device (what a
    # scheduler that gives back fewer machines does): the one-device run.
    rewind(workdir, tmp_path / 'fewer', 8)
    train_and_evaluate(config, str(tmp_path / 'fewer'))
    diff = rel_diff(params_at(config, one_device), params_at(config, tmp_path / 'fewer'))
    print(f'2 processes x 2 devices resumed at step 8 by 1 process x 1 device, against 1 device: {diff:.2e}')
    assert diff < ALL_STEPS


@pytest.mark.xdist_group(PROCESSES)  # see tiny_run.PROCESSES
@pytest.mark.slow  # two processes of about 20 s each
def test_a_one_process_checkpoint_resumes_in_two_processes(scale_config, one_device, tiny_cifar10, cache_dir, tmp_path):
    config = scale_config
    rewind(one_device, tmp_path / 'run', HALF)
    port = free_port()
    procs = [_launch([TRAIN], tmp_path / 'run', tiny_overrides(tiny_cifar10, cache_dir, **SETTINGS), port, i)
             for i in range(2)]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert f'resuming at step {HALF}' in outputs[0] and '4 cpu device(s)' in outputs[0], outputs[0]
    diff = rel_diff(params_at(config, one_device), params_at(config, tmp_path / 'run'))
    print(f'1 device resumed at step {HALF} by 2 processes x 2 devices, against 1 device: {diff:.2e}')
    assert diff < ALL_STEPS


def test_process_id_out_of_range_is_one_line_and_exit_2(tmp_path):
    cmd = [sys.executable, TRAIN, '--config', EXPERIMENT, '--workdir', str(tmp_path / 'run'),
           '--coordinator', '127.0.0.1:1', '--num-processes', '2', '--process-id', '2']
    result = subprocess.run(cmd, capture_output=True, check=False, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr == 'error: --process-id 2: must be in 0..1 for --num-processes 2\n'
    assert not (tmp_path / 'run').exists()


@pytest.mark.xdist_group(PROCESSES)  # see tiny_run.PROCESSES
def test_a_coordinator_that_never_answers_is_a_bounded_wait_and_one_line(tmp_path):
    cmd = [sys.executable, TRAIN, '--config', EXPERIMENT, '--workdir', str(tmp_path / 'run'),
           '--coordinator', f'127.0.0.1:{free_port()}', '--num-processes', '2', '--process-id', '1',
           '--distributed-timeout', '1']
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, check=False, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'did not answer within 1 s' in lines[0], result.stderr
    assert time.monotonic() - started < 60  # 1 s of waiting plus the start-up of Python and JAX
    assert not (tmp_path / 'run').exists()


# ---------------------------------------------------------------------------------------------
# Several seeds in one program (training.num_seeds)

SEEDS = 2  # two show the mechanism; each replica is a whole one-seed program on the CPU (unrolled)


@pytest.fixture(scope='module')
def seeds_run(tiny_cifar10, cache_dir, tmp_path_factory):
    """``num_seeds=SEEDS`` for the run of ``scale_config``, uninterrupted, in this process."""
    config = tiny_config(tiny_cifar10, cache_dir, **SETTINGS, **{'training.num_seeds': str(SEEDS)})
    workdir = tmp_path_factory.mktemp('seeds')
    summary = train_and_evaluate(config, str(workdir))
    return config, workdir, summary


@pytest.mark.slow  # two more runs; the replica directories are checked in the fast lane
def test_each_replica_is_the_run_of_its_seed(scale_config, one_device, seeds_run, tiny_cifar10, cache_dir, tmp_path):
    from cnnzoo.training import replica

    config, _workdir, summary = seeds_run
    one_config = scale_config
    stacked = summary['state']
    # The initialisations are bitwise those of the one-seed runs (vmap draws the same numbers).
    initial = build(config).state
    for k in range(SEEDS):
        single = build(tiny_config(tiny_cifar10, cache_dir, **SETTINGS, seed=str(k))).state
        chex.assert_trees_all_equal(replica(initial, k).params, single.params, strict=True)
    # At the end, within the tolerance of the module docstring (on a GPU vmap batches the convolutions,
    # which sums in another order).
    singles = {0: one_device}
    for k in range(1, SEEDS):
        singles[k] = tmp_path / f'seed{k}'
        train_and_evaluate(tiny_config(tiny_cifar10, cache_dir, **SETTINGS, seed=str(k)), str(singles[k]))
    for k, directory in singles.items():
        diff = rel_diff(params_at(one_config, directory), replica(stacked, k).params)
        print(f'replica {k} of {SEEDS} against the run with seed {k}, {STEPS} steps: {diff:.2e}')
        assert diff < ALL_STEPS


def test_each_replica_directory_reads_as_a_one_seed_run(seeds_run):
    from cnnzoo.errors import ConfigError
    from cnnzoo.run.evaluate import evaluate_checkpoint
    from cnnzoo.run.workdir import read_run

    _config, workdir, summary = seeds_run
    assert [r['seed'] for r in summary['replicas']] == list(range(SEEDS))
    for k in range(SEEDS):
        directory = workdir / f'seed{k}'
        saved = json.loads((directory / 'config.json').read_text())
        assert saved['seed'] == k and saved['training']['num_seeds'] == 1
        run = read_run(str(directory))
        assert run.finished and run.steps_done == STEPS
        evals = [json.loads(line) for line in (directory / 'metrics.jsonl').read_text().splitlines()
                 if json.loads(line)['split'] != 'train']
        assert evals[-1]['accuracy'] == summary['replicas'][k]['final']['accuracy']
        result = evaluate_checkpoint(str(directory), which='best')
        assert result['accuracy'] == summary['replicas'][k]['best_accuracy']
    with pytest.raises(ConfigError, match=f'holds {SEEDS} seeds trained together; evaluate one of them'):
        evaluate_checkpoint(str(workdir))


@pytest.mark.slow  # two subprocess runs; one-seed SIGKILL resume is in the fast lane, and the
@pytest.mark.exhaustive  # restore and resume of a seeds run from a fixture in the suite (test_loop.py)
def test_killed_seeds_run_resumes_bitwise(seeds_run, tiny_cifar10, cache_dir, tmp_path):
    from tiny_run import assert_bitwise_equal, run_script

    config, workdir, summary = seeds_run
    overrides = tiny_overrides(tiny_cifar10, cache_dir, **SETTINGS, **{'training.num_seeds': str(SEEDS)})
    code, out = run_script(tmp_path, overrides, signal_at_step=7)
    assert code == -signal.SIGKILL, out
    code, out = run_script(tmp_path, overrides)
    assert code == 0 and re.search(r'resuming at step [1-7]\b', out), out
    ckpts = Checkpoints(str(tmp_path), keep=2)
    try:
        resumed = ckpts.restore(build(config).state).state
    finally:
        ckpts.close()
    assert_bitwise_equal(summary['state'], resumed)

    def records(directory, k):
        lines = (directory / f'seed{k}' / 'metrics.jsonl').read_text().splitlines()
        return [{key: v for key, v in json.loads(line).items() if key != 'images_per_sec'} for line in lines]

    for k in range(SEEDS):
        assert records(tmp_path, k) == records(workdir, k)


def test_the_report_reads_the_replicas_as_seeds_of_one_point(seeds_run):
    from cnnzoo.run.workdir import find_runs

    _, workdir, _ = seeds_run
    assert sorted(os.path.basename(r.directory) for r in find_runs(str(workdir))) == [f'seed{k}' for k in range(SEEDS)]


@pytest.mark.slow  # a 4-device subprocess run; seeds in one program and four devices each in the
@pytest.mark.exhaustive  # suite (test_each_replica_is_the_run_of_its_seed, test_four_devices_train_...)
def test_seeds_spread_over_devices_are_the_runs_of_their_seeds(scale_config, one_device, seeds_run, tiny_cifar10,
                                                                cache_dir, tmp_path):
    from cnnzoo.training import replica

    one_config = scale_config
    _config, _, summary = seeds_run
    spread = {**SETTINGS, 'training.num_seeds': '2', 'training.seed_devices': '2'}
    out = train_on_devices(4, tmp_path, tiny_overrides(tiny_cifar10, cache_dir, **spread))
    assert '4 cpu device(s), 2 seeds in one program' in out
    two = tiny_config(tiny_cifar10, cache_dir, **spread)
    ckpts = Checkpoints(str(tmp_path), keep=2)
    try:
        state = ckpts.restore(build(tiny_config(tiny_cifar10, cache_dir, **{**spread, 'training.seed_devices': '1'})).state).state
    finally:
        ckpts.close()
    assert two.training.seed_devices == 2
    # Replica 0 is seed 0's run; replica 1 the 3-seed run's replica 1 (seed 1), both within tolerance.
    assert rel_diff(params_at(one_config, one_device), replica(state, 0).params) < ALL_STEPS
    assert rel_diff(replica(summary['state'], 1).params, replica(state, 1).params) < ALL_STEPS


def test_a_batch_that_does_not_divide_over_the_devices_is_one_line(tiny_cifar10, cache_dir, tmp_path):
    env = env_with_devices(4)
    cmd = [sys.executable, TRAIN, '--config', EXPERIMENT, '--workdir', str(tmp_path / 'run')]
    overrides = tiny_overrides(tiny_cifar10, cache_dir, **{'training.batch_size': '30'})
    result = subprocess.run(cmd + [f'--config.{k}={v}' for k, v in overrides], env=env, capture_output=True,
                            check=False, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == ('error: config.training.batch_size=30 does not divide over 4 devices; '
                             'use a multiple of 4\n')
    assert not (tmp_path / 'run').exists()
