"""Lint and types as habits: ``ruff check`` over the project and ``mypy`` over the package pass with
the settings in pyproject.toml ([tool.ruff], [tool.mypy]); on failure the findings are printed.

Both are test dependencies (pip install -e '.[test]'). mypy keeps its cache in .mypy_cache at the
root: a cold run took 16 s on two cores (load 1.2), a warm one a few; its test is marked slow.
"""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINTED = ['cnnzoo', 'tests', 'benchmarks', 'scripts', 'experiments']


def run(*args: str, cwd: str = ROOT, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', *args], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=timeout)


def test_ruff_finds_nothing_in_the_project():
    result = run('ruff', 'check', '--no-cache', *LINTED, timeout=120)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_ruff_uses_the_project_settings_and_catches_a_finding(tmp_path):
    """The same check on a copy of one module with a likely bug added (a closure over a loop
    variable, outside ruff's own defaults before 0.16) fails, naming it."""
    shutil.copy(os.path.join(ROOT, 'pyproject.toml'), tmp_path / 'pyproject.toml')
    (tmp_path / 'cnnzoo').mkdir()
    module = tmp_path / 'cnnzoo' / 'registry.py'
    shutil.copy(os.path.join(ROOT, 'cnnzoo', 'registry.py'), module)
    assert run('ruff', 'check', '--no-cache', 'cnnzoo', cwd=str(tmp_path), timeout=120).returncode == 0
    with open(module, 'a') as f:
        f.write('\n\ndef callbacks():\n    return [lambda: k for k in range(3)]\n')
    result = run('ruff', 'check', '--no-cache', 'cnnzoo', cwd=str(tmp_path), timeout=120)
    assert result.returncode == 1 and 'B023' in result.stdout, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_finds_nothing_in_the_package():
    result = run('mypy', timeout=900)  # the files and the flags: [tool.mypy] in pyproject.toml
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert 'Success: no issues found' in result.stdout
