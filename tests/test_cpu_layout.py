"""The command line's CPU layout (cnnzoo.run.cpu_layout): when it splits the batch over
single-threaded devices, that it leaves the user's choices alone, and that a run resumed on the other
layout continues."""

import os
import signal

import pytest
from tiny_run import TOTAL_STEPS, run_script, tiny_config, tiny_overrides

from cnnzoo.config import apply_overrides, default_config
from cnnzoo.run.cpu_layout import DEVICE_COUNT, choose_cpu_layout, cpu_devices


def config_with(**overrides):
    return apply_overrides(default_config(), [(k, str(v)) for k, v in overrides.items()])


@pytest.mark.parametrize('environ, cpus, plugin, overrides, expected', [
    ({}, 2, False, {}, 2),  # the default run on two cores: two devices
    ({}, 4, False, {}, 4),  # batch 128 and 1000 evaluated split over four
    ({}, 1, False, {}, 1),  # one core: nothing to split
    ({}, 3, False, {}, 1),  # 3 divides neither batch
    ({'XLA_FLAGS': '--xla_backend_optimization_level=0'}, 2, False, {}, 1),  # the user's flags, whatever they say
    ({'JAX_NUM_CPU_DEVICES': '1'}, 2, False, {}, 1),  # the user's device count
    ({'JAX_PLATFORMS': 'cuda'}, 2, False, {}, 1),  # not a CPU run
    ({}, 2, True, {}, 1),  # a GPU plugin installed: JAX would take the GPU
    ({}, 2, False, {'training.batch_size': 127}, 1),
    ({}, 2, False, {'training.eval_batch_size': 999}, 1),
    ({}, 2, False, {'training.num_seeds': 2}, 1),  # seeds unrolled in one program (cnnzoo.training.replicas)
])
def test_cpu_devices_where_the_layout_applies(environ, cpus, plugin, overrides, expected):
    assert cpu_devices(config_with(**overrides), environ, cpus, plugin) == expected


def test_choose_cpu_layout_sets_xla_flags_only_where_it_applies(monkeypatch):
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1})
    monkeypatch.setattr('cnnzoo.run.cpu_layout.backend_started', lambda: False)
    monkeypatch.setattr('cnnzoo.run.cpu_layout.installed_gpu_plugin', lambda: False)
    environ: dict[str, str] = {}
    assert choose_cpu_layout(default_config(), environ=environ) == 2
    assert environ['XLA_FLAGS'] == (f'{DEVICE_COUNT}=2 --xla_cpu_multi_thread_eigen=false '
                                    'intra_op_parallelism_threads=1')
    for environ, joins in (({'XLA_FLAGS': '--xla_dump_to=/tmp/x'}, False), ({}, True)):
        before = dict(environ)
        assert choose_cpu_layout(default_config(), joins=joins, environ=environ) == 1
        assert environ == before


@pytest.mark.slow  # two command-line runs of the tiny experiment
def test_a_run_resumed_on_the_other_layout_continues(tiny_cifar10, cache_dir, tmp_path):
    """Started by the command line with no XLA_FLAGS (its default layout: one single-threaded device
    per core here), killed mid-epoch, resumed on one device (JAX_NUM_CPU_DEVICES=1): it continues
    from its checkpoint to the end."""
    overrides = tiny_overrides(tiny_cifar10, cache_dir)
    expected = cpu_devices(tiny_config(tiny_cifar10, cache_dir), {}, len(os.sched_getaffinity(0)), False)
    bare = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'JAX_NUM_CPU_DEVICES')}
    code, out = run_script(tmp_path, overrides, signal_at_step=13, sig=signal.SIGKILL, env=bare)
    assert code == -signal.SIGKILL, out
    assert f'{expected} cpu device(s)' in out, out
    code, out = run_script(tmp_path, overrides, env={**bare, 'JAX_NUM_CPU_DEVICES': '1'})
    assert code == 0, out
    assert '1 cpu device(s)' in out and 'resuming at step 12' in out, out
    assert f'step {TOTAL_STEPS}/{TOTAL_STEPS}' in out, out
