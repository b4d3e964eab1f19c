"""The layout's contract (pyproject.toml, [tool.importlinter]): each layer of cnnzoo imports only the
layers below it, and no module of a package imports another around a circle."""

import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip('importlinter', reason='import-linter is a test dependency: pip install -e .[test]')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lint(root: str) -> subprocess.CompletedProcess:
    """``lint-imports`` on the package under ``root`` with the pyproject.toml there."""
    code = 'import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())'
    env = {**os.environ, 'PYTHONPATH': root}
    return subprocess.run([sys.executable, '-c', code], cwd=root, env=env, capture_output=True, text=True,
                          check=False, timeout=300)


def test_every_layer_imports_only_the_layers_below_it_and_no_package_has_a_cycle():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert 'Contracts: 2 kept, 0 broken' in result.stdout


@pytest.mark.parametrize('module, line, broken', [
    ('cnnzoo/data/augmentation.py', 'from cnnzoo.training import rngs  # data and training are independent', 'layers'),
    ('cnnzoo/studies/points.py', 'from cnnzoo.studies import report  # report imports points', 'cycles'),
])
def test_the_contract_catches_an_import_that_breaks_it(tmp_path, module, line, broken):
    """The same check on a copy of the package with one offending import added fails, naming it."""
    shutil.copytree(os.path.join(ROOT, 'cnnzoo'), tmp_path / 'cnnzoo',
                    ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(os.path.join(ROOT, 'pyproject.toml'), tmp_path / 'pyproject.toml')
    with open(tmp_path / module, 'a') as f:
        f.write(f'\n{line}\n')
    result = lint(str(tmp_path))
    assert result.returncode == 1, result.stdout[-2000:]
    assert 'Contracts: 1 kept, 1 broken' in result.stdout
    assert module.replace('/', '.').removesuffix('.py').rsplit('.', 1)[-1] in result.stdout
    assert {'layers': 'Each layer imports only the layers below it BROKEN',
            'cycles': 'No import cycles between the modules of a package BROKEN'}[broken] in result.stdout
