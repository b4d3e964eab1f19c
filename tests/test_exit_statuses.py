"""README's "Exit statuses" table, row by row, for every command that can reach the row.

Each case runs the command in this process through ``cnnzoo.cli.main`` (what the console command
and ``scripts/*.py`` run) on the fast path that reaches its status: bad input is refused before any
compilation, and a failed run fails before training. Where a command creates files, a refused
start leaves ``tmp_path`` as it found it. The rows' other cases live beside the features: a NaN loss
(tests/test_sweep.py), damaged checkpoints (tests/test_reliability.py), SIGTERM in a real process
(tests/test_cli.py), evaluate's 0 (tests/test_evaluate.py).
"""

import json
import os

import pytest
from tiny_run import EXPERIMENT

from cnnzoo.cli import main
from cnnzoo.data import datasets
from cnnzoo.run.signals import StopSignals
from cnnzoo.run.workdir import WorkdirLock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HE2016 = os.path.join(ROOT, 'experiments', 'he2016_cifar10.py')
TINY = ['--config.model.stage_sizes=(1, 1, 1)', '--config.training.batch_size=20', '--config.training.num_epochs=1',
        '--config.training.progress_bar=False']


@pytest.fixture(autouse=True)
def offline_data_dir(tmp_path, monkeypatch):
    """An empty data directory and no network: CIFAR is only where a case puts it."""
    monkeypatch.setenv('CNNZOO_DATA_DIR', str(tmp_path / 'data'))
    monkeypatch.setattr(datasets, 'network_available', lambda: False)
    monkeypatch.chdir(tmp_path)


def status(*argv) -> int:
    """The exit status of ``cnnzoo ARGV...``."""
    return main(list(argv))


def data(archive, cache_dir):
    return [f'--config.data.archive={archive}', f'--config.data.data_dir={cache_dir}']


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: '), err
    return err[0]


# ---- 0: finished -------------------------------------------------------------------------------

def test_status_0_finished(tiny_cifar10, tmp_path, capsys):
    assert status('config', EXPERIMENT) == 0
    assert status('train', '--config', EXPERIMENT, '--dry-run') == 0
    assert status('models', 'resnet20') == 0
    assert status('sweep', '--config', HE2016, '--workdir', 'runs/he', '--only', 'resnet20', '--list') == 0
    assert status('cifar-to-folder', '--archive', tiny_cifar10, '--out', 'folder', '--per-class-train', '1',
                  '--per-class-val', '1') == 0
    run = tmp_path / 'run'  # a run's files as the loop writes them, for the report
    run.mkdir()
    (run / 'config.json').write_text(_config_json())
    (run / 'metrics.jsonl').write_text(json.dumps({'step': 10, 'epoch': 1.0, 'split': 'train', 'loss': 2.0,
                                                   'images_per_sec': 100.0}) + '\n'
                                       + json.dumps({'step': 10, 'epoch': 1.0, 'split': 'test', 'loss': 2.1,
                                                     'accuracy': 0.2}) + '\n')
    assert status('report', str(run), '--no-plots') == 0
    assert (run / 'report.md').exists() and not (run / 'plots').exists()


def _config_json() -> str:
    from cnnzoo.config import apply_overrides, load_config_file, to_json

    return to_json(apply_overrides(load_config_file(EXPERIMENT), [('training.num_steps', '10')]))


# ---- 1: the run failed -------------------------------------------------------------------------

def test_status_1_the_run_failed(tiny_cifar10, cache_dir, tmp_path, capsys):
    workdir = tmp_path / 'busy'
    workdir.mkdir()
    lock = WorkdirLock(str(workdir)).acquire()  # another run holds the workdir
    try:
        assert status('train', '--config', EXPERIMENT, '--workdir', str(workdir), *TINY,
                      *data(tiny_cifar10, cache_dir)) == 1
        assert 'is in use by another run' in one_error_line(capsys)
    finally:
        lock.release()
    # A sweep whose run directory holds a run of another config: that run fails, the sweep says 1.
    other = tmp_path / 'sweep' / 'resnet20' / 'seed0'
    other.mkdir(parents=True)
    (other / 'config.json').write_text(_config_json())
    (other / 'checkpoints' / '4').mkdir(parents=True)
    assert status('sweep', '--config', HE2016, '--workdir', str(tmp_path / 'sweep'), '--only', 'resnet20',
                  '--seeds', '0', *TINY, *data(tiny_cifar10, cache_dir)) == 1
    assert 'holds a run with a different config' in capsys.readouterr().out
    # The report cannot write its file (an OS error): 1, in one line.
    (other / 'report.md').mkdir()
    assert status('report', str(other), '--no-plots') == 1
    assert 'report.md' in one_error_line(capsys)


# ---- 2: bad input, refused before anything ran -------------------------------------------------

BAD_INPUT = [
    ('unknown command', ['trian'], 'unknown command'),
    ('train: unknown flag', ['train', '--config', EXPERIMENT, '--workdir', 'w', '--bogus=1'], 'unknown flag --bogus'),
    ('train: a flag without its value', ['train', '--config', EXPERIMENT, '--workdir'],
     '--workdir: expected one argument'),
    ('train: bad value', ['train', '--config', EXPERIMENT, '--workdir', 'w', '--config.training.batch_size=-1'],
     'batch_size'),
    ('train: no experiment file', ['train', '--config', 'nofile.py', '--workdir', 'w'], 'nofile.py'),
    ('train: workdir is a file', ['train', '--config', EXPERIMENT, '--workdir', 'a_file'], 'is a file'),
    ('train: missing archive, nested workdir',
     ['train', '--config', EXPERIMENT, '--workdir', 'runs/a/b', '--config.data.archive=missing.tar.gz'],
     'archive not found: missing.tar.gz'),
    ('train: no CIFAR anywhere', ['train', '--config', EXPERIMENT, '--workdir', 'runs/a/b'], 'no network'),
    ('evaluate: no workdir flag', ['evaluate'], '--workdir is required'),
    ('evaluate: workdir not found', ['evaluate', '--workdir', 'runs/none'], 'not found'),
    ('evaluate: workdir is a file', ['evaluate', '--workdir', 'a_file'], 'not a directory'),
    ('evaluate: not a run', ['evaluate', '--workdir', 'empty_dir'], 'holds no training run'),
    ('evaluate: bad --checkpoint', ['evaluate', '--workdir', 'empty_dir', '--checkpoint', 'first'],
     '--checkpoint must be'),
    ('evaluate: no such torch checkpoint',
     ['evaluate', '--config', EXPERIMENT, '--torch-checkpoint', 'missing.pth'],
     '--torch-checkpoint missing.pth: not found'),
    ('sweep: no --config', ['sweep', '--workdir', 'runs/s'], '--config is required'),
    ('sweep: bad --seeds', ['sweep', '--config', HE2016, '--workdir', 'runs/s', '--seeds', 'a'], '--seeds'),
    ('sweep: --only matches nothing', ['sweep', '--config', HE2016, '--workdir', 'runs/s', '--only', 'vgg*'],
     'matches no point'),
    ('sweep: workdir is a file',
     ['sweep', '--config', HE2016, '--workdir', 'a_file', '--only', 'resnet20', '--seeds', '0', *TINY],
     'is a file'),
    ('sweep: missing archive, nested workdir',
     ['sweep', '--config', HE2016, '--workdir', 'runs/a/b', '--only', 'resnet20',
      '--config.data.archive=missing.tar.gz'], 'archive not found'),
    ('report: no directory', ['report'], 'DIR is required'),
    ('report: not found', ['report', 'runs/none'], 'not found'),
    ('report: a file', ['report', 'a_file'], 'not a directory'),
    ('report: no run', ['report', 'empty_dir'], 'no run under'),
    ('report: unknown flag', ['report', 'empty_dir', '--bogus'], 'unknown flag --bogus'),
    ('models: no match', ['models', 'zzz*'], 'no model matches'),
    ('models: a flag', ['models', '--bogus'], 'unknown flag --bogus'),
    ('config: no file', ['config', 'nofile.py'], 'nofile.py'),
    ('config: unknown key', ['config', EXPERIMENT, '--config.optimizer.learning_rat=1'], 'learning_rat'),
    ('cifar-to-folder: no --out', ['cifar-to-folder'], '--out is required'),
    ('cifar-to-folder: bad count', ['cifar-to-folder', '--out', 'o', '--per-class-val', '0'], '--per-class-val'),
    ('cifar-to-folder: --out is a file', ['cifar-to-folder', '--out', 'a_file', '--archive', 'x.tar.gz'],
     'is a file'),
    ('cifar-to-folder: no CIFAR', ['cifar-to-folder', '--out', 'runs/o'], '--archive FILE'),
    ('compare-pytorch: unknown model', ['compare-pytorch', '--models', 'nosuch'], "unknown model 'nosuch'"),
    ('compare-pytorch: bad --steps', ['compare-pytorch', '--steps', 'x'], '--steps'),
    ('compare-accuracy: no --config', ['compare-accuracy'], '--config is required'),
]


@pytest.mark.parametrize('argv, message', [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT])
def test_status_2_bad_input_is_one_line_and_creates_nothing(argv, message, tmp_path, capsys):
    (tmp_path / 'a_file').write_text('not a directory')
    (tmp_path / 'empty_dir').mkdir()
    before = sorted(os.listdir(tmp_path))
    assert status(*argv) == 2
    line = one_error_line(capsys)
    assert message in line, line
    assert sorted(os.listdir(tmp_path)) == before  # no workdir, no parents of one, no data directory
    assert os.listdir(tmp_path / 'empty_dir') == []


def test_status_2_evaluate_of_a_run_without_a_checkpoint(tmp_path, capsys):
    run = tmp_path / 'started'
    run.mkdir()
    (run / 'config.json').write_text(_config_json())
    assert status('evaluate', '--workdir', str(run)) == 2
    assert 'has no checkpoint yet' in one_error_line(capsys)


def test_status_2_a_resume_with_another_config_leaves_the_run_as_it_was(tmp_path, capsys):
    run = tmp_path / 'run'
    (run / 'checkpoints' / '4').mkdir(parents=True)
    (run / 'config.json').write_text(_config_json())
    (run / '.lock').write_text('12345')  # every run leaves its lock file; a start writes its pid in it

    def files():
        return {p: p.read_bytes() if p.is_file() else None for p in run.rglob('*') if p.name != '.lock'}

    before = files()
    assert status('train', '--config', EXPERIMENT, '--workdir', str(run), '--config.training.num_steps=10',
                  '--config.optimizer.learning_rate=0.5') == 2
    assert 'holds a run with a different config (optimizer.learning_rate)' in one_error_line(capsys)
    assert files() == before and sorted(os.listdir(run)) == ['.lock', 'checkpoints', 'config.json']


# ---- 128 + N: stopped by signal N after saving ----------------------------------------------------

@pytest.mark.parametrize('signal_name, expected', [('SIGTERM', 143), ('SIGINT', 130)])
def test_status_128_plus_n_stopped_by_a_signal(signal_name, expected, tiny_cifar10, cache_dir, tmp_path):
    with StopSignals() as signals:  # as if the signal came at once: the command stops at its first boundary
        signals.received = signal_name
        assert status('train', '--config', EXPERIMENT, '--workdir', str(tmp_path / 'run'), *TINY,
                      *data(tiny_cifar10, cache_dir)) == expected
        assert status('sweep', '--config', HE2016, '--workdir', str(tmp_path / 'sweep'), '--only', 'resnet20',
                      '--seeds', '0', *TINY, *data(tiny_cifar10, cache_dir)) == expected
