"""The GPU command (scripts/gpu/run.sh) in its CPU smoke mode: every stage, a few steps of tiny sizes,
so that the command cannot rot while no GPU is at hand; and the determinism switch
(``config.training.deterministic``, :mod:`cnnzoo.run.determinism`) that its ``resume`` stage measures
on the GPU."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
from conftest import EXHAUSTIVE

from cnnzoo.errors import ConfigError
from cnnzoo.run import determinism

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_stages():
    """benchmarks/gpu/stages.py, a script, as a module."""
    spec = importlib.util.spec_from_file_location('gpu_stages', os.path.join(ROOT, 'benchmarks', 'gpu', 'stages.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_speed(folder):
    speed = json.loads((folder / 'speed.json').read_text())
    assert {r['variant'] for r in speed['results'] if not r['error']} >= {'jax-fp32', 'torch-eager-fp32'}


def _check_tta(folder):
    tta = json.loads((folder / 'tta.json').read_text())
    assert tta['jax']['exit_status'] == 0 and tta['jax']['evals'], tta


def _check_seeds(folder):
    seeds = json.loads((folder / 'seeds.json').read_text())
    assert [r['k'] for r in seeds['rows']] == [1, 2] and all(r['images_per_sec_per_seed'] for r in seeds['rows'])


def _check_he2016(folder):
    he = json.loads((folder / 'he2016.json').read_text())
    assert he['sweep_exit_status'] == 0 and len(he['finished']) == 4, he  # resnet20 and plain20, seeds 0 and 1


def _check_resume(folder):
    """On a CPU every stopped-and-resumed run ends bitwise equal to the whole run, with or without the
    switch (which changes no bit there), each SIGKILL landed after a complete checkpoint and the
    resumed process did the steps after it again, and max pooling trains under the switch."""
    resume = json.loads((folder / 'resume.json').read_text())
    plan, rows = resume['plan'], resume['rows']
    assert {(r['variant'], r['stop']) for r in rows} == set(load_stages().SMOKE_CHAINS), rows
    for r in rows:
        assert r['interrupted'] and r['resumed']['exit_status'] == 0, r
        assert r['state']['bitwise_equal'] and r['records']['equal'], r
        resumed_at, stopped_after = r['resumed']['resumed_at_step'], r['stopped']['signal_sent_after_step']
        if r['stop'] == 'sigkill':  # from the checkpoint before the kill, redoing the steps after it
            assert resumed_at and resumed_at % plan['checkpoint_every'] == 0 and resumed_at < stopped_after, r
        else:  # where the SIGTERM stopped it, within two steps
            assert stopped_after <= resumed_at <= stopped_after + 2, r
    assert resume['switch_changes_the_numbers']['bitwise_equal']
    assert resume['max_pool']['compiles'], resume['max_pool']
    assert resume['speed']['steps_per_second_without'] and resume['speed']['steps_per_second_with']
    assert '| on | off | sigkill |' in (folder / 'resume.md').read_text()


CHECKS = {'speed': _check_speed, 'tta': _check_tta, 'seeds': _check_seeds, 'he2016': _check_he2016,
          'resume': _check_resume}


# Each stage a few compilations: 20-60 s on two shared cores, resume's 11 processes longer. The suite
# runs he2016 (the training stage the others' runs share); the exhaustive tier the rest.
@pytest.mark.slow
@pytest.mark.parametrize('stage', [stage if stage == 'he2016' else pytest.param(stage, marks=EXHAUSTIVE)
                                   for stage in CHECKS])
def test_each_stage_runs_in_smoke_mode_and_leaves_at_most_8_files(stage, tiny_cifar10, tmp_path):
    pytest.importorskip('torch')
    env = {**os.environ, 'CNNZOO_GPU_SMOKE': '1', 'CNNZOO_GPU_ARCHIVE': tiny_cifar10, 'PYTHON': sys.executable}
    result = subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'gpu', 'run.sh'), stage, str(tmp_path / 'out')],
                            capture_output=True, check=False, text=True, env=env, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder = tmp_path / 'out' / stage
    if not folder.is_dir():  # one stage alone writes into OUTDIR itself
        folder = tmp_path / 'out'
    files = os.listdir(folder)
    assert len(files) <= 8 and {f'{stage}.json', f'{stage}.md', f'{stage}.log', 'env.txt'} <= set(files), files
    assert 'jax.devices()' in (folder / 'env.txt').read_text()
    CHECKS[stage](folder)


def test_without_a_gpu_the_command_refuses_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'CNNZOO_GPU_SMOKE'}
    env['PYTHON'] = sys.executable
    env['JAX_PLATFORMS'] = 'cpu'
    result = subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'gpu', 'run.sh'), 'speed', str(tmp_path / 'out')],
                            capture_output=True, check=False, text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'no GPU' in errors[0], result.stderr


def test_an_unknown_stage_is_refused_in_one_line_that_lists_the_stages(tmp_path):
    result = subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'gpu', 'run.sh'), 'resum', str(tmp_path / 'out')],
                            capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert result.returncode == 2 and result.stderr.count('\n') == 1, result.stderr
    assert "unknown stage 'resum'" in result.stderr and 'he2016 or resume' in result.stderr


# --- the determinism switch (cnnzoo.run.determinism)

def test_the_switch_is_appended_to_xla_flags_and_a_value_already_there_wins():
    flag = determinism.DETERMINISTIC_OPS
    assert determinism.with_xla_flag('', flag, 'true') == f'{flag}=true'
    assert determinism.with_xla_flag('--xla_backend_optimization_level=0', flag, 'true') == \
        f'--xla_backend_optimization_level=0 {flag}=true'
    for users in (f'{flag}=false', f'--a=1 {flag}', f'{flag}=0 --b=2'):
        assert determinism.with_xla_flag(users, flag, 'true') == users
    assert determinism.xla_flag(f'{flag}=false --x=1 {flag}=true', flag) == 'true'  # the last one, as XLA reads them
    assert determinism.xla_flag(f'--x=1 {flag}', flag) == ''
    assert determinism.xla_flag(f'{flag}_suffix=true', flag) is None


def test_the_command_line_sets_the_switch_before_jax_starts_and_xla_accepts_it():
    """In a fresh process: the flag joins the XLA_FLAGS already there; XLA parses it when the backend
    starts (a flag it does not know ends the process); once the backend is up, the switch cannot be
    set any more, and says so in one line. Also keeps JAX's private backends_are_initialized honest."""
    code = textwrap.dedent('''
        import os
        os.environ['XLA_FLAGS'] = '--xla_backend_optimization_level=0'
        import jax
        from cnnzoo.errors import ConfigError
        from cnnzoo.run import determinism
        assert not determinism.backend_started()
        determinism.enable_deterministic_gpu_ops()
        print(os.environ['XLA_FLAGS'])
        print(jax.numpy.ones(3).sum(), determinism.backend_started())
        determinism.enable_deterministic_gpu_ops()  # named already: nothing to do
        os.environ['XLA_FLAGS'] = '--xla_backend_optimization_level=0'
        try:
            determinism.enable_deterministic_gpu_ops()
        except ConfigError as e:
            print('refused:', e)
    ''')
    env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == '--xla_backend_optimization_level=0 --xla_gpu_deterministic_ops=true'
    assert lines[1] == '3.0 True'
    assert lines[2].startswith('refused: config.training.deterministic=True: JAX started its backend before')
    assert len(lines) == 3


@pytest.mark.parametrize('given, enabled', [(True, 1), (False, 0)])
def test_the_sweep_command_sets_the_switch_from_the_grid_and_its_overrides(monkeypatch, tmp_path, given, enabled):
    """cnnzoo sweep turns the switch on, before JAX starts, when the grid file's config with the
    command line's overrides asks for it (the sweep itself replaced: nothing runs)."""
    import cnnzoo.cli.sweep
    from cnnzoo.run import determinism

    called = []
    monkeypatch.setattr(determinism, 'enable_deterministic_gpu_ops', lambda: called.append(1))
    monkeypatch.setattr(cnnzoo.cli.sweep, 'sweep', lambda *args, **kwargs: types.SimpleNamespace(status=0))
    grid = os.path.join(ROOT, 'experiments', 'he2016_cifar10.py')
    args = ['--config', grid, '--workdir', str(tmp_path / 'sweep'), f'--config.training.deterministic={given}']
    assert cnnzoo.cli.sweep.sweep_main(args) == 0
    assert len(called) == enabled


@pytest.mark.parametrize('platform, flags, refused', [
    ('cpu', '', None),  # a CPU run is deterministic without it
    ('gpu', '--xla_gpu_deterministic_ops=true', None),
    ('gpu', '--xla_gpu_deterministic_ops', None),
    ('gpu', '', 'without --xla_gpu_deterministic_ops=true in XLA_FLAGS'),
    ('gpu', '--xla_gpu_deterministic_ops=false', 'XLA_FLAGS sets --xla_gpu_deterministic_ops=false'),
])
def test_a_gpu_run_that_asks_for_the_switch_without_it_is_refused(monkeypatch, platform, flags, refused):
    from ml_collections import ConfigDict

    monkeypatch.setenv('XLA_FLAGS', flags)
    config = ConfigDict({'training': {'deterministic': True}})
    if refused is None:
        determinism.check_deterministic(config, platform)
    else:
        with pytest.raises(ConfigError, match=refused):
            determinism.check_deterministic(config, platform)
    determinism.check_deterministic(ConfigDict({'training': {'deterministic': False}}), platform)


def test_the_loop_refuses_a_gpu_run_without_the_switch_before_it_writes_anything(tiny_cifar10, cache_dir,
                                                                                  tmp_path, monkeypatch):
    """A library call (no command line to set the flag) on a GPU whose backend started without it:
    one line, and the workdir is not created."""
    import jax
    from tiny_run import tiny_config

    from cnnzoo.run.loop import train_and_evaluate

    monkeypatch.setenv('XLA_FLAGS', '--xla_backend_optimization_level=0')
    monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
    workdir = tmp_path / 'run'
    with pytest.raises(ConfigError, match='JAX started its GPU backend without') as error:
        train_and_evaluate(tiny_config(tiny_cifar10, cache_dir, **{'training.deterministic': 'True'}), str(workdir))
    assert '\n' not in str(error.value) and not workdir.exists()


def test_the_switch_does_not_define_a_run():
    """A run resumes, and a sweep counts it done, with the switch turned either way: it changes which
    GPU kernels compute, not what the run computes (cnnzoo.run.workdir.NOT_DEFINING)."""
    from cnnzoo.run.workdir import NOT_DEFINING

    assert 'training.deterministic' in NOT_DEFINING


def test_final_states_are_compared_bitwise_and_their_distance_said():
    stages = load_stages()
    a = {'params/w': np.array([1.0, 2.0], np.float32), 'step': np.array(5, np.int32)}
    assert stages.compare_arrays(a, dict(a)) == {'bitwise_equal': True, 'arrays': 2, 'differing_arrays': 0,
                                                 'max_abs_difference': 0.0, 'first_differing': []}
    b = {**a, 'params/w': np.array([1.0, np.nextafter(np.float32(2.0), np.float32(3.0))], np.float32)}
    diff = stages.compare_arrays(a, b)
    assert not diff['bitwise_equal'] and diff['differing_arrays'] == 1 and diff['first_differing'] == ['params/w']
    assert diff['max_abs_difference'] == pytest.approx(2.0 ** -22)
    assert stages.compare_arrays(a, {**a, 'step': np.array(5, np.int64)})['max_abs_difference'] == float('inf')
    zeros = {'z': np.array([0.0], np.float32)}
    assert not stages.compare_arrays(zeros, {'z': np.array([-0.0], np.float32)})['bitwise_equal']  # bits, not ==

    records = [{'step': 1, 'split': 'train', 'loss': 2.5, 'images_per_sec': 100.0},
               {'step': 2, 'split': 'train', 'loss': 2.25, 'images_per_sec': 90.0}]
    faster = [{**r, 'images_per_sec': 500.0} for r in records]
    assert stages.compare_records(records, faster) == {'equal': True, 'first_differing_step': None}
    parted = [records[0], {**records[1], 'loss': 2.2500002}]
    assert stages.compare_records(records, parted) == {'equal': False, 'first_differing_step': 2}
    assert stages.compare_records(records, records[:1]) == {'equal': False, 'first_differing_step': 2}
