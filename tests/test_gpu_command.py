"""The GPU command (scripts/gpu/run.sh) in its CPU smoke mode: every stage, a few steps of tiny sizes,
so that the command cannot rot while no GPU is at hand."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


CHECKS = {'speed': _check_speed, 'tta': _check_tta, 'seeds': _check_seeds, 'he2016': _check_he2016}


@pytest.mark.slow  # each stage a few compilations: 20-60 s on two shared cores
@pytest.mark.parametrize('stage', list(CHECKS))
def test_each_stage_runs_in_smoke_mode_and_leaves_at_most_8_files(stage, tiny_cifar10, tmp_path):
    pytest.importorskip('torch')
    env = {**os.environ, 'CNNZOO_GPU_SMOKE': '1', 'CNNZOO_GPU_ARCHIVE': tiny_cifar10, 'PYTHON': sys.executable}
    result = subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'gpu', 'run.sh'), stage, str(tmp_path / 'out')],
                            capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
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
                            capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'no GPU' in errors[0], result.stderr
