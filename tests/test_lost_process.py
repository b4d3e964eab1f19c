"""A process of a two-process run lost (SIGKILL at a step, of either process, and inside a save) or
alive but stuck: the others stop within the bound with one line and exit status 75, and the same two
commands resume from the last complete checkpoint. Processes of 2 CPU devices each, joined on
127.0.0.1, with a heartbeat timeout of a few seconds (the default is 30). Below them, the supervising parent alone,
with small stand-in children: what it passes through, what it turns into one line."""

import json
import os
import pathlib
import re
import signal
import sys
import time

import pytest
from test_scale import _launch
from tiny_run import EXPERIMENT, PROCESSES, TRAIN, free_port, tiny_overrides

from cnnzoo.run.supervise import LOST_PROCESS

pytestmark = pytest.mark.xdist_group(PROCESSES)  # see tiny_run.PROCESSES

HEARTBEAT_S = 3
STALL_S = 5  # --stall-timeout of the start whose process 1 hangs (the default is 600)
BOUND_S = 60  # the documented bound at the default heartbeat timeout; this test's is 3 s
LOSSY = os.path.join(os.path.dirname(__file__), 'lossy_train.py')
SETTINGS = {'training.num_steps': '16', 'training.checkpoint_every_steps': '4', 'training.eval_every_epochs': '100'}


def complete_checkpoints(workdir) -> list[int]:
    return sorted(int(name) for name in os.listdir(workdir / 'checkpoints') if name.isdigit())


class Run:
    """Both processes of the run, started with the same commands every time."""

    def __init__(self, workdir, overrides):
        self.workdir, self.overrides = workdir, overrides

    def start(self, *, kill_in_save: int | None = None, hang_after: int | None = None):
        port = free_port()
        env = ({'CNNZOO_TEST_KILL_IN_SAVE': str(kill_in_save)} if kill_in_save else
               {'CNNZOO_TEST_HANG_AFTER_STEPS': str(hang_after)} if hang_after else None)
        stall = ('--stall-timeout', str(STALL_S)) if hang_after else ()
        return [_launch([LOSSY if i == 1 and env else TRAIN], self.workdir, self.overrides, port, i,
                        '--heartbeat-timeout', str(HEARTBEAT_S), *stall, env=env if i == 1 else None)
                for i in range(2)]


def read_until_step(proc, step: int | None) -> str:
    """Process 0's output up to the line of ``step`` (None: to its end)."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if step is not None and line.startswith(f'step {step}/'):
            break
    return ''.join(lines)


def assert_lost(survivor, lost: int, since: float, earlier: str = '') -> str:
    """``survivor`` stops within the bound, with status 75 and exactly one error line naming ``lost``."""
    out = earlier + survivor.communicate(timeout=BOUND_S + 60)[0]
    took = time.monotonic() - since
    print(f'process {1 - lost} stopped {took:.1f} s after process {lost} was lost')
    assert survivor.returncode == LOST_PROCESS, out
    errors = [line for line in out.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and f'lost process {lost} of 2' in errors[0], out
    assert 'run the same commands again' in errors[0]
    assert 'Traceback' not in out and 'Check failure' not in out, out
    assert not re.search(r'^[IWEF]\d{4} \d\d:', out, re.MULTILINE), out  # no line of JAX's C++ logging
    assert took < BOUND_S
    log = re.search(r'details: (\S+)\)$', errors[0]).group(1)
    assert re.search(r'(coordination|distributed) service', pathlib.Path(log).read_text())  # the full story is kept
    return errors[0]


@pytest.mark.slow  # five starts of two processes on two cores, the compilation cached after the first
def test_a_lost_process_stops_the_other_in_one_line_and_the_same_commands_resume(tiny_cifar10, cache_dir, tmp_path):
    run = Run(tmp_path / 'run', tiny_overrides(tiny_cifar10, cache_dir, **SETTINGS))

    # Process 1 killed at a step: process 0 stops.
    procs = run.start()
    head = read_until_step(procs[0], 6)
    procs[1].kill()
    killed = time.monotonic()
    print(assert_lost(procs[0], 1, killed, head))
    procs[1].wait()
    assert complete_checkpoints(run.workdir)[-1] == 4

    # The same commands resume; process 0, the coordinator, killed at a step: process 1 stops.
    procs = run.start()
    head = read_until_step(procs[0], 10)
    assert 'resuming at step 4' in head, head
    procs[0].kill()
    killed = time.monotonic()
    procs[0].wait()
    assert 'the coordinator' in assert_lost(procs[1], 0, killed)
    assert complete_checkpoints(run.workdir)[-1] == 8

    # Process 1 killed inside the save of step 12: process 0 stops, and step 8 is the last complete one.
    procs = run.start(kill_in_save=12)
    head = read_until_step(procs[0], 12)
    killed = time.monotonic()  # at most: the kill comes after the step's line
    assert_lost(procs[0], 1, killed, head)
    procs[1].wait()
    assert complete_checkpoints(run.workdir)[-1] == 8

    # Process 1 alive but stuck at its third step (its heartbeats go on): both stop after the
    # --stall-timeout, each with one line; step 8 is still the last complete checkpoint.
    procs = run.start(hang_after=3)
    started = time.monotonic()
    outputs = [proc.communicate(timeout=BOUND_S + 60)[0] for proc in procs]
    took = time.monotonic() - started
    print(f'process 1 hung: both stopped {took:.1f} s after the start')
    assert [proc.returncode for proc in procs] == [LOST_PROCESS] * 2, outputs
    for out in outputs:
        errors = [line for line in out.splitlines() if line.startswith('error:')]
        assert len(errors) == 1 and 'run the same commands again' in errors[0], out
        assert 'Traceback' not in out and 'Check failure' not in out, out
    assert f'process 1 of 2 made no progress (no step, evaluation batch or save finished) for {STALL_S} s' in outputs[1]
    assert took < BOUND_S
    assert complete_checkpoints(run.workdir)[-1] == 8

    # The same commands once more: the run finishes, resumed from the last complete checkpoint.
    procs = run.start()
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert 'resuming at step 8' in outputs[0], outputs[0]
    assert not any(line.startswith(('error:', 'warning:')) for out in outputs for line in out.splitlines()), outputs
    records = [json.loads(line) for line in (run.workdir / 'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in records if r['split'] == 'train'] == list(range(1, 17))
    assert complete_checkpoints(run.workdir)[-1] == 16


@pytest.mark.parametrize('flag, value, message', [
    ('--heartbeat-timeout', '0', 'error: --heartbeat-timeout 0: must be at least 1 second\n'),
    ('--stall-timeout', '-1', 'error: --stall-timeout -1: must be 0 (never) or a number of seconds\n'),
    ('--stall-timeout', '1m', "error: --stall-timeout '1m': expected a whole number\n")])
def test_a_bad_timeout_is_one_line_and_exit_2(tmp_path, flag, value, message, capsys):
    from cnnzoo.cli.train import train_main

    args = ['--config', EXPERIMENT, '--workdir', str(tmp_path / 'run'),
            '--coordinator', '127.0.0.1:1', '--num-processes', '2', '--process-id', '1', flag, value]
    assert train_main(args) == 2  # refused before it joins, supervises or creates anything
    assert capsys.readouterr().err == message
    assert not (tmp_path / 'run').exists()


def test_the_one_line_names_the_lost_process_from_the_services_words():
    from cnnzoo.run.supervise import lost_message, lost_processes

    service = (b'E1205 08:35:49.431614 coordination_service.cc:1549] Use error polling to propagate the following '
               b'error to all tasks: UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):\n'
               b'1\nThe tasks have crashed.\n')
    assert lost_processes(service) == [1]
    assert lost_processes(b'Barrier failed: Task 2 heartbeat timeout. This indicates') == [2]
    line = lost_message(service, -signal.SIGABRT, 0, 2, 'run/logs/process0.stderr')
    assert line.startswith('lost process 1 of 2 (it died or stopped answering), so process 0 stopped;')
    agent = b'F1205 client.h:80] Terminating process because the JAX distributed service detected fatal errors.'
    assert lost_message(agent, -signal.SIGABRT, 1, 2, 'x').startswith('lost process 0 of 2, the coordinator')
    assert lost_message(b'', -signal.SIGSEGV, 1, 2, 'x').startswith('process 1 of 2 ended abnormally (SIGSEGV)')


CHILD = r"""
import os, sys
sys.stderr.write('warning: a line of the run\n')
sys.stderr.flush()
sys.stderr.write('Traceback (most recent call last):\n  File x\nValueError: boom\n')
sys.stderr.flush()
if sys.argv[1] == 'abort':
    sys.stderr.write('F1205 08:35:49.431993 client.h:80] Terminating process because the JAX distributed service '
                     'detected fatal errors. Task 1 heartbeat timeout\n*** Check failure stack trace: ***\n')
    sys.stderr.flush()
    os.abort()
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize('ending', ['exit', 'abort'])
def test_the_parent_passes_a_childs_own_ending_through_and_turns_an_abort_into_one_line(
        ending, tmp_path, monkeypatch, capfd):
    from cnnzoo.run import supervise as supervise_module

    script = tmp_path / 'child.py'
    script.write_text(CHILD)
    monkeypatch.setattr(supervise_module.sys, 'orig_argv', [sys.executable, str(script), '3' if ending == 'exit' else 'abort'])
    workdir = tmp_path / 'run'
    workdir.mkdir()
    status = supervise_module.supervise(process_id=0, num_processes=2, workdir=str(workdir))
    err = capfd.readouterr().err
    if ending == 'exit':  # the child's own lines, all and in order, and its status
        assert status == 3
        assert err == 'warning: a line of the run\nTraceback (most recent call last):\n  File x\nValueError: boom\n'
        assert not (workdir / 'logs').exists()
    else:
        assert status == LOST_PROCESS
        assert err.startswith('warning: a line of the run\nerror: lost process 1 of 2 ') and err.count('\n') == 2
        kept = (workdir / 'logs' / 'process0.stderr').read_text()
        assert 'ValueError: boom' in kept and 'Check failure' in kept and f'details: {workdir}/logs/process0.stderr' in err


STALLING_CHILD = r"""
import sys, time
from cnnzoo.run.supervise import beat
sys.stderr.write('a line of the run\n')
sys.stderr.flush()
if sys.argv[1] == 'moves on, then hangs':
    beat()
    time.sleep(600)
else:  # 'compiles, then moves on': silent longer than the stall timeout before its first beat
    time.sleep(1.5)
    for _ in range(3):
        beat()
        time.sleep(0.3)
"""


@pytest.mark.parametrize('child', ['moves on, then hangs', 'compiles, then moves on'])
def test_a_child_silent_for_the_stall_timeout_after_moving_on_is_ended_with_one_line(
        child, tmp_path, monkeypatch, capfd):
    from cnnzoo.run import supervise as supervise_module

    script = tmp_path / 'child.py'
    script.write_text(STALLING_CHILD)
    monkeypatch.setattr(supervise_module.sys, 'orig_argv', [sys.executable, str(script), child])
    workdir = tmp_path / 'run'
    workdir.mkdir()
    started = time.monotonic()
    status = supervise_module.supervise(process_id=1, num_processes=2, workdir=str(workdir), stall_s=1)
    took = time.monotonic() - started
    err = capfd.readouterr().err
    if child == 'moves on, then hangs':  # ended about a second after its last beat, not after its 600 s
        assert status == LOST_PROCESS and took < 30
        assert err.startswith('a line of the run\nerror: the run stopped moving: process 1 of 2 made no progress')
        assert err.count('\n') == 2 and f'details: {workdir}/logs/process1.stderr' in err
    else:  # the clock starts at the first beat: a long compilation is not a stall
        assert status == 0 and err == 'a line of the run\n'  # silent 1.5 s, then beats 0.3 s apart


def test_a_stop_signal_delivered_twice_at_once_is_one_stop_for_the_training_half(monkeypatch):
    from cnnzoo.run.signals import StopSignals

    monkeypatch.setattr(StopSignals, 'same_stop_within_s', 60.0)
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)  # from the scheduler
        os.kill(os.getpid(), signal.SIGTERM)  # and forwarded by the supervising parent
        assert signals.received == 'SIGTERM'  # and this process is still here to save
        assert signal.getsignal(signal.SIGTERM) == signals._handle


def test_a_finished_training_is_a_success_whatever_jax_says_at_exit(tmp_path, monkeypatch, capfd):
    from cnnzoo.run import supervise as supervise_module

    script = tmp_path / 'child.py'
    script.write_text('import sys\nsys.stderr.write("W1205 08:53:43.163252 preemption_sync_manager.cc:147] Failed to '
                      'retrieve preemption notice from coordination service: UNAVAILABLE\\n")\n')
    monkeypatch.setattr(supervise_module.sys, 'orig_argv', [sys.executable, str(script)])
    assert supervise_module.supervise(process_id=1, num_processes=2, workdir=str(tmp_path)) == 0
    assert capfd.readouterr().err.startswith('W1205 08:53:43.163252 preemption_sync_manager.cc:147]')
