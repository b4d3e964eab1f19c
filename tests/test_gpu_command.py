"""The GPU command (scripts/gpu/run.sh) in its CPU smoke mode: every stage, a few steps of tiny sizes,
so that the command cannot rot while no GPU is at hand."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow  # about 100 s on two shared cores: four stages, each a few compilations
def test_every_stage_runs_in_smoke_mode_and_leaves_at_most_8_files(tiny_cifar10, tmp_path):
    pytest.importorskip('torch')
    env = {**os.environ, 'CNNZOO_GPU_SMOKE': '1', 'CNNZOO_GPU_ARCHIVE': tiny_cifar10, 'PYTHON': sys.executable}
    result = subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'gpu', 'run.sh'), 'speed,tta,seeds,he2016',
                             str(tmp_path / 'out')], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for stage in ('speed', 'tta', 'seeds', 'he2016'):
        folder = tmp_path / 'out' / stage
        files = os.listdir(folder)
        assert len(files) <= 8 and {f'{stage}.json', f'{stage}.md', f'{stage}.log', 'env.txt'} <= set(files), files
        assert 'jax.devices()' in (folder / 'env.txt').read_text()
        json.loads((folder / f'{stage}.json').read_text())
    speed = json.loads((tmp_path / 'out' / 'speed' / 'speed.json').read_text())
    assert {r['variant'] for r in speed['results'] if not r['error']} >= {'jax-fp32', 'torch-eager-fp32'}
    tta = json.loads((tmp_path / 'out' / 'tta' / 'tta.json').read_text())
    assert tta['jax']['exit_status'] == 0 and tta['jax']['evals'], tta
    seeds = json.loads((tmp_path / 'out' / 'seeds' / 'seeds.json').read_text())
    assert [r['k'] for r in seeds['rows']] == [1, 2] and all(r['images_per_sec_per_seed'] for r in seeds['rows'])
    he = json.loads((tmp_path / 'out' / 'he2016' / 'he2016.json').read_text())
    assert he['sweep_exit_status'] == 0 and len(he['finished']) == 4, he  # resnet20 and plain20, seeds 0 and 1


def test_without_a_gpu_the_command_refuses_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'CNNZOO_GPU_SMOKE'}
    env['PYTHON'] = sys.executable
    env['JAX_PLATFORMS'] = 'cpu'
    result = subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'gpu', 'run.sh'), 'speed', str(tmp_path / 'out')],
                            capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'no GPU' in errors[0], result.stderr
