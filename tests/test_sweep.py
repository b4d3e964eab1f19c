"""Studies end to end: scripts/sweep.py runs a grid, survives SIGKILL and SIGTERM, records failures, refuses
bad grids up front; scripts/report.py's numbers equal those computed here from the runs' files.

Every run is a ResNet-8 (resnet20 with one block per stage) for one epoch of the tiny 200-image archive
(10 steps of 20 images), so a run takes a few seconds once its programs are compiled; the sweeps share
JAX's persistent compilation cache in their workdir, as real ones do.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import EXHAUSTIVE

from cnnzoo.cli.sweep import sweep_main
from cnnzoo.config import ConfigError
from cnnzoo.studies.report import write_report
from cnnzoo.studies.sweep import build_points, point_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = os.path.join(ROOT, 'scripts', 'sweep.py')
REPORT = os.path.join(ROOT, 'scripts', 'report.py')
STEPS = 10  # one epoch

GRID = '''
from cnnzoo.config import default_config


def get_config():
    config = default_config()
    config.model.name = 'resnet20'
    config.training.num_steps = 0
    config.training.num_epochs = 1.0
    return config


def get_sweep():
    return {points}
'''
TWO_BY_TWO = "[{'model.activation': a, 'schedule.ratio': r} for a in ('relu', 'tanh') for r in ('2:1:1', '1:1')]"
POINTS = ['relu-ratio2_1_1', 'relu-ratio1_1', 'tanh-ratio2_1_1', 'tanh-ratio1_1']
SMALL = "[{'model.activation': a} for a in ('relu', 'tanh')]"


def tiny_overrides(archive, cache_dir, *, drop=()):
    overrides = {
        'data.source': 'archive', 'data.archive': archive, 'data.data_dir': cache_dir, 'data.augment': 'none',
        'model.stage_sizes': '(1, 1, 1)', 'training.batch_size': '20', 'training.eval_batch_size': '50',
        'training.eval_every_epochs': '0.5', 'training.checkpoint_every_steps': '4',
        'training.log_every_steps': '2', 'training.progress_bar': 'False', 'optimizer.learning_rate': '0.05',
    }
    return [f'--config.{k}={v}' for k, v in overrides.items() if k not in drop]


def write_grid(directory, points: str) -> str:
    path = os.path.join(directory, 'grid.py')
    with open(path, 'w') as f:
        f.write(GRID.format(points=points))
    return path


def run_sweep_script(args, *, signal_when=None, sig=signal.SIGKILL):
    """Runs scripts/sweep.py; ``signal_when(lines)`` says when to send ``sig``. Returns (status, output)."""
    proc = subprocess.Popen([sys.executable, SWEEP, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if signal_when is not None and signal_when(lines):
            proc.send_signal(sig)
            signal_when = None
    proc.wait(timeout=600)
    return proc.returncode, ''.join(lines)


def records(run_dir):
    with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
        return [json.loads(line) for line in f]


def snapshot(run_dir):
    """The bytes of a run's metrics and the names and modification times of all its files."""
    files = {}
    for directory, _, names in os.walk(run_dir):
        for name in names:
            path = os.path.join(directory, name)
            if name != '.lock':
                files[os.path.relpath(path, run_dir)] = os.stat(path).st_mtime_ns
    with open(os.path.join(run_dir, 'metrics.jsonl'), 'rb') as f:
        return f.read(), files


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('cache'))


@pytest.fixture(scope='module')
def killed_and_resumed(tiny_cifar10, cache_dir, tmp_path_factory):
    """A 2x2 grid x 2 seeds, SIGKILLed in its third run, then run again to the end."""
    base = tmp_path_factory.mktemp('sweep')
    workdir = str(base / 'runs')
    args = ['--config', write_grid(str(base), TWO_BY_TWO), '--workdir', workdir, '--seeds', '0,1',
            *tiny_overrides(tiny_cifar10, cache_dir)]

    def in_third_run_at_step_6(lines):
        return any(line.startswith('[3/8]') for line in lines) and lines[-1].startswith('step 6/')

    status, first = run_sweep_script(args, signal_when=in_third_run_at_step_6)
    assert status == -signal.SIGKILL, first
    before = {seed: snapshot(os.path.join(workdir, POINTS[0], seed)) for seed in ('seed0', 'seed1')}
    status, second = run_sweep_script(args)
    return workdir, first, second, status, before


@pytest.fixture(scope='module')
def small_sweep(tiny_cifar10, cache_dir, tmp_path_factory):
    """Two points (relu, tanh) x two seeds, run to the end in this process (13 s of the fast lane's
    CPU time before its three tests moved to the suite: a sweep run to its end, its ``--list`` and its
    report of real runs stay in the fast lane through test_a_failing_run_is_recorded_and_the_others_go_on;
    the killed 2x2 sweep above is the suite's too)."""
    base = tmp_path_factory.mktemp('small_sweep')
    workdir = str(base / 'runs')
    args = ['--config', write_grid(str(base), SMALL), '--workdir', workdir, '--seeds', '0,1',
            *tiny_overrides(tiny_cifar10, cache_dir)]
    assert sweep_main(args) == 0
    return workdir


@pytest.mark.slow  # a sweep killed and run again; a failing run and a finished sweep are in the fast lane
def test_killed_sweep_resumes_with_the_expected_runs_and_no_repeated_work(killed_and_resumed):
    workdir, first, second, status, before = killed_and_resumed
    assert status == 0, second
    assert '[3/8] relu-ratio1_1 seed 0' in first and '[4/8]' not in first
    # the two finished runs are skipped, untouched; the third resumes from its checkpoint
    assert '[1/8] relu-ratio2_1_1 seed 0: done, skipped' in second
    assert '[2/8] relu-ratio2_1_1 seed 1: done, skipped' in second
    for seed in ('seed0', 'seed1'):
        assert snapshot(os.path.join(workdir, POINTS[0], seed)) == before[seed]
    third = second.split('[3/8]')[1].split('[4/8]')[0]
    resumed = re.search(r'resuming at step (\d+)', third)
    assert resumed and 0 < int(resumed.group(1)) < STEPS, third
    assert second.count('compiled and ran the first step') == 6  # runs 3 to 8, nothing else
    # exactly the grid's runs, each finished once
    assert sorted(d for d in os.listdir(workdir) if not d.startswith('.') and
                  os.path.isdir(os.path.join(workdir, d))) == sorted(POINTS)
    for point in POINTS:
        assert sorted(os.listdir(os.path.join(workdir, point))) == ['seed0', 'seed1']
        for seed in ('seed0', 'seed1'):
            recs = records(os.path.join(workdir, point, seed))
            keys = [(r['split'], r['step']) for r in recs]
            assert len(keys) == len(set(keys)), f'{point}/{seed} repeats a record'
            assert [r['step'] for r in recs if r['split'] == 'test'] == [5, 10]
    with open(os.path.join(workdir, 'sweep.json')) as f:
        manifest = json.load(f)
    assert {k: v['state'] for k, v in manifest['runs'].items()} == {
        f'{p}/seed{s}': 'done' for p in POINTS for s in (0, 1)}
    assert [p['name'] for p in manifest['points']] == POINTS
    assert manifest['command'][:2] == ['scripts/sweep.py', '--config']


@pytest.mark.slow  # the fast lane lists a sweep's runs in test_a_failing_run_is_recorded_and_the_others_go_on
def test_list_shows_every_run_and_its_state_without_running(small_sweep, tiny_cifar10, cache_dir, capsys):
    workdir = small_sweep
    args = ['--config', os.path.join(os.path.dirname(workdir), 'grid.py'), '--workdir', workdir, '--list',
            '--seeds', '0,1,2', '--only', 'relu*']
    assert sweep_main(args + tiny_overrides(tiny_cifar10, cache_dir)) == 0
    out = capsys.readouterr().out
    assert re.search(r'relu/seed1 +done', out) and re.search(r'relu/seed2 +pending', out)
    assert 'tanh' not in out and '3 runs' in out
    # the same grid with another learning rate: the directories hold other runs
    assert sweep_main(args + tiny_overrides(tiny_cifar10, cache_dir) + ['--config.optimizer.learning_rate=0.2']) == 0
    assert re.search(r'relu/seed1 +differs', capsys.readouterr().out)
    assert not os.path.exists(os.path.join(workdir, 'relu', 'seed2'))


# the killed sweep's report in the exhaustive tier: its resume is tested in the suite
# (test_killed_sweep_resumes_with_the_expected_runs_and_no_repeated_work), the report on 'small'
@pytest.mark.parametrize('sweep', [
    pytest.param('small', marks=(pytest.mark.slow, pytest.mark.xdist_group('small_sweep'))),  # conftest's group
    pytest.param('killed', marks=EXHAUSTIVE)])
def test_report_means_and_deviations_equal_the_runs_metrics(sweep, request):
    """The finished 1-axis sweep (bars), and the killed and resumed 2x2 one (a heat map)."""
    workdir = request.getfixturevalue('small_sweep') if sweep == 'small' else request.getfixturevalue('killed_and_resumed')[0]
    axes, points, figure = ((['model.activation'], ['relu', 'tanh'], 'bars') if sweep == 'small' else
                            (['model.activation', 'schedule.ratio'], POINTS, 'heatmap'))
    _, table = write_report(workdir)
    with open(os.path.join(workdir, 'report.csv')) as f:
        header, *rows = [line.rstrip('\n').split(',') for line in f]
    assert header[:len(axes) + 1] == ['point', *axes] and header[len(axes) + 1] == 'n'  # only the varying keys
    assert [r[0] for r in rows] == points
    for row in rows:
        got = dict(zip(header, row))
        runs = [records(os.path.join(workdir, got['point'], s)) for s in ('seed0', 'seed1')]
        final = [100 * [r for r in rs if r['split'] == 'test'][-1]['accuracy'] for rs in runs]
        best = [100 * max(r['accuracy'] for r in rs if r['split'] == 'test') for rs in runs]
        loss = [[r for r in rs if r['split'] == 'train'][-1]['loss'] for rs in runs]
        assert got['n'] == '2' and got['state'] == 'done' and float(got['epochs_done']) == 1.0
        assert float(got['final_accuracy_mean']) == pytest.approx(np.mean(final))
        assert float(got['final_accuracy_std']) == pytest.approx(np.std(final, ddof=1))
        assert float(got['best_accuracy_mean']) == pytest.approx(np.mean(best))
        assert float(got['best_accuracy_std']) == pytest.approx(np.std(best, ddof=1))
        assert float(got['final_train_loss_mean']) == pytest.approx(np.mean(loss))
        assert f'{np.mean(final):.2f} ± {np.std(final, ddof=1):.2f}' in table
    for name in ('curves', figure):
        for ext in ('png', 'svg'):
            path = os.path.join(workdir, 'plots', f'{name}.{ext}')
            assert os.path.getsize(path) > 1000, path
    with open(os.path.join(workdir, 'report.md')) as f:
        text = f.read()
    assert '![learning curves](plots/curves.png)' in text
    assert "bands are the min–max over seeds" in text and 'are ±1 sample standard deviation' in text


@pytest.mark.slow  # scripts/report.py on the sweep's directory: the fast lane's failing-run test writes its report
def test_report_of_one_run_directory(small_sweep, tmp_path):
    run = shutil.copytree(os.path.join(small_sweep, 'relu', 'seed0'), tmp_path / 'one')
    result = subprocess.run([sys.executable, REPORT, str(run)], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    final = 100 * [r for r in records(run) if r['split'] == 'test'][-1]['accuracy']
    assert f'| one | 1 | {final:.2f} |' in result.stdout
    # it says what it did as it went, before the table: the runs read, each figure written
    said = result.stdout.split('| one |')[0]
    assert re.search(rf'report {re.escape(str(run))}: read 1 run of 1 point in [0-9.]+ s; drawing the figures', said)
    assert f'wrote {run / "plots" / "curves.png"} (learning curves)' in said
    assert (run / 'report.md').exists() and (run / 'plots' / 'curves.png').stat().st_size > 1000


def test_a_failing_run_is_recorded_and_the_others_go_on(tiny_cifar10, cache_dir, tmp_path, capsys):
    grid = write_grid(str(tmp_path), "[{'optimizer.learning_rate': 1e30}, {'optimizer.learning_rate': 0.05}]")
    status = sweep_main(['--config', grid, '--workdir', str(tmp_path / 'runs'),  # what scripts/sweep.py runs
                         *tiny_overrides(tiny_cifar10, cache_dir, drop=['optimizer.learning_rate'])])
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert status == 1, out
    assert re.search(r'\[1/2\] lr1e\+30 seed 0: failed after \d+ s: loss is \S+ at step \d+', out), out
    assert re.search(r'\[2/2\] lr0.05 seed 0: done at step 10/10 in \d+ s', out), out
    assert '1/2 runs done, 1 failed' in out
    with open(tmp_path / 'runs' / 'sweep.json') as f:
        runs = json.load(f)['runs']
    assert runs['lr1e+30/seed0']['state'] == 'failed' and runs['lr1e+30/seed0']['error'].startswith('loss is')
    assert runs['lr0.05/seed0']['state'] == 'done'
    text, _ = write_report(str(tmp_path / 'runs'))
    assert '`lr1e+30/seed0`: loss is' in text
    # --list says each run's state and runs nothing: the finished one done, the failed one failed, a
    # seed not run yet pending; under another base config the finished run's directory differs
    listing = ['--config', grid, '--workdir', str(tmp_path / 'runs'), '--list', '--seeds', '0,1',
               *tiny_overrides(tiny_cifar10, cache_dir, drop=['optimizer.learning_rate'])]
    assert sweep_main(listing) == 0
    out = capsys.readouterr().out
    assert re.search(r'lr0.05/seed0 +done', out) and re.search(r'lr1e\+30/seed0 +failed', out), out
    assert re.search(r'lr0.05/seed1 +pending', out) and '4 runs' in out, out
    assert sweep_main([*listing, '--config.training.batch_size=10']) == 0
    assert re.search(r'lr0.05/seed0 +differs', capsys.readouterr().out)
    assert not os.path.exists(tmp_path / 'runs' / 'lr0.05' / 'seed1')


@pytest.mark.slow
def test_sigterm_stops_the_sweep_after_saving_and_starts_nothing_more(tiny_cifar10, cache_dir, tmp_path):
    grid = write_grid(str(tmp_path), TWO_BY_TWO)
    args = ['--config', grid, '--workdir', str(tmp_path / 'runs'), '--only', 'relu-ratio2_1_1', '--seeds', '0,1',
            *tiny_overrides(tiny_cifar10, cache_dir)]
    status, out = run_sweep_script(args, signal_when=lambda lines: lines[-1].startswith('step 4/'),
                                   sig=signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, out
    assert 'stopped by SIGTERM' in out and '[2/2]' not in out
    with open(tmp_path / 'runs' / 'sweep.json') as f:
        runs = json.load(f)['runs']
    assert runs['relu-ratio2_1_1/seed0']['state'] == 'interrupted'
    assert runs['relu-ratio2_1_1/seed1']['state'] == 'pending'
    _, table = write_report(str(tmp_path / 'runs'))  # a partial sweep has a report too
    assert table.splitlines()[2].endswith('| in progress: 0/1 runs done |'), table


@pytest.mark.parametrize('point, message', [
    ("{'optimizer.learning_rat': 0.1}", 'unknown config key: optimizer.learning_rat'),
    ("{'model.activation': 'relux'}", "config.model.activation='relux'"),
    ("{'schedule.ratio': '5:x'}", "config.schedule.ratio='5:x'"),
    ("{'training.batch_size': 'big'}", 'expected int'),
])
def test_a_bad_point_fails_at_list_time_with_one_line(tmp_path, capsys, point, message):
    grid = write_grid(str(tmp_path), f"[{{'model.activation': 'relu'}}, {point}]")
    assert sweep_main(['--config', grid, '--workdir', str(tmp_path / 'runs'), '--list']) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'point 1' in lines[0], captured.err
    assert message in lines[0]
    assert captured.out == '' and not os.path.exists(tmp_path / 'runs')


def test_point_names_are_readable_safe_and_unique():
    assert point_name({'model.name': 'resnet20', 'schedule.ratio': '5:3:2'}) == 'resnet20-ratio5_3_2'
    assert point_name({'config': 'experiments/vgg16_cifar10.py', 'optimizer.name': 'adam',
                       'optimizer.learning_rate': 1e-3}) == 'vgg16_cifar10-adam-lr0.001'
    assert point_name({'data.augment': 'none', 'model.stage_sizes': (1, 1, 1)}) == 'aug_none-stages1_1_1'
    assert point_name({}) == 'base'
    assert point_name({'model.head': 'a/../b c'}) == 'head_a_.._b_c'
    assert len(point_name({'model.name': 'x' * 300})) <= 100


@pytest.mark.parametrize('study', ['he2016_cifar10', 'vgg_cifar10', 'seeds_comparison', 'resnet18_ablation',
                                   'resnet20_ablation', 'criteria_optimizers'])
def test_every_study_grid_builds_and_checks(study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a point's 'config' file is found from any directory
    points = build_points(os.path.join(ROOT, 'experiments', f'{study}.py'))
    names = [p.name for p in points]
    assert len(names) == len(set(names))
    if study == 'he2016_cifar10':
        assert [n for n in names if re.match(r'(resnet20|plain20)', n)] == ['resnet20', 'plain20']
    if study == 'resnet18_ablation':
        assert len(points) == 36 + 6
        assert {p.config.model.get('residual') for p in points} >= {'relu_before_add', 'square',
                                                                     'inverted_bottleneck'}
    if study == 'resnet20_ablation':
        assert len(points) == 16 and all(p.config.training.num_epochs == 1.0 for p in points)


def test_a_grid_file_that_is_not_a_list_of_dicts_is_refused(tmp_path):
    with pytest.raises(ConfigError, match='not a dict'):
        build_points(write_grid(str(tmp_path), "['model.name=resnet20']"))
    with pytest.raises(ConfigError, match='appears twice'):
        build_points(write_grid(str(tmp_path), "[{'model.name': 'resnet20'}, {'model.name': 'resnet20'}]"))
    colliding = build_points(write_grid(str(tmp_path), "[{'data.data_dir': 'a b'}, {'data.data_dir': 'a_b'}]"))
    assert [p.name[:11] for p in colliding] == ['data_dir_a_'] * 2 and colliding[0].name != colliding[1].name


@pytest.mark.slow  # vmapped seeds are in the fast lane through tests/test_scale.py's seeds run
def test_vmap_seeds_trains_each_points_seeds_as_one_program(tiny_cifar10, cache_dir, tmp_path, capsys):
    grid = write_grid(str(tmp_path), "[{'model.activation': 'relu'}, {'model.activation': 'tanh'}]")
    args = ['--config', grid, '--workdir', str(tmp_path / 'runs'), '--seeds', '3,4', '--vmap-seeds',
            *tiny_overrides(tiny_cifar10, cache_dir)]
    assert sweep_main(args) == 0
    out = capsys.readouterr().out
    assert '[1/2] relu seed 3..4 in one program' in out and '4/4 runs done, 0 failed' in out, out
    with open(tmp_path / 'runs' / 'sweep.json') as f:
        runs = json.load(f)['runs']
    assert sorted(runs) == ['relu/seed3', 'relu/seed4', 'tanh/seed3', 'tanh/seed4']
    assert all(r['state'] == 'done' and r['final_accuracy'] is not None for r in runs.values())
    for key, entry in runs.items():  # each replica's own final evaluation, in its seed's directory
        assert records(tmp_path / 'runs' / key)[-1]['accuracy'] == entry['final_accuracy']
    assert sweep_main(args) == 0 and capsys.readouterr().out.count('done, skipped') == 2
    text, _ = write_report(str(tmp_path / 'runs'))
    assert re.search(r'^\| relu \| relu \| 2 \| \d+\.\d+ ± \d+\.\d+ \|', text, re.MULTILINE), text  # two seeds
    # Seeds that are not s, s+1, ... cannot share a program: one line at --list time.
    assert sweep_main([*args[:4], '--seeds', '0,2', '--vmap-seeds', '--list']) == 2
    assert '--vmap-seeds trains seeds s, s+1' in capsys.readouterr().err


def test_report_epochs_column_writes_done_and_planned_alike():
    from cnnzoo.studies.report import _epochs

    assert f'{_epochs(0.103)}/{_epochs(40 / 390)}' == '0.103/0.103'
    assert _epochs(64000 / 390) == '164'


def test_a_sweep_whose_data_is_missing_creates_nothing(tiny_cifar10, cache_dir, tmp_path, capsys):
    grid = write_grid(str(tmp_path), "[{'model.activation': 'relu'}, {'model.activation': 'tanh'}]")
    workdir = tmp_path / 'nested' / 'deeper' / 'runs'
    overrides = [o if not o.startswith('--config.data.archive=') else f'--config.data.archive={tmp_path}/missing.tar.gz'
                 for o in tiny_overrides(tiny_cifar10, cache_dir)]
    assert sweep_main(['--config', grid, '--workdir', str(workdir), *overrides]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f'error: archive not found: {tmp_path}/missing.tar.gz'
    assert sorted(os.listdir(tmp_path)) == ['grid.py']  # no workdir, no parents of it


def test_a_sweep_whose_every_run_is_refused_at_its_start_leaves_nothing(tiny_cifar10, cache_dir, tmp_path, capsys,
                                                                       monkeypatch):
    # A warm-up in epochs longer than the run is refused when the grid is checked where the training
    # set's size is known from the data's index; here it is not (as for a source without one), so each
    # run's start refuses it once the data is read.
    import cnnzoo.run.validation

    monkeypatch.setattr(cnnzoo.run.validation, 'train_set_size', lambda data: None)
    grid = write_grid(str(tmp_path), "[{'schedule.warmup_epochs': 0.6}, {'schedule.warmup_epochs': 0.8}]")
    workdir = tmp_path / 'nested' / 'runs'
    args = ['--config', grid, '--workdir', str(workdir), '--config.training.num_steps=5',
            *tiny_overrides(tiny_cifar10, cache_dir)]
    assert sweep_main(args) == 2
    out = capsys.readouterr().out
    assert re.search(r'\[1/2\] warmup0.6 seed 0: failed after \d+ s: config.schedule.warmup_epochs=0.6', out), out
    assert 'every run was refused at its start; nothing was written' in out
    assert sorted(os.listdir(tmp_path)) == ['grid.py']


def test_bars_are_labelled_with_the_points_names_and_the_figures_say_which_spread_they_draw(tmp_path, monkeypatch):
    from cnnzoo.run.workdir import RunFiles
    from cnnzoo.studies import plots
    from cnnzoo.studies.points import PointSummary

    def point(name, accuracies):
        runs = [RunFiles(str(tmp_path / name / f'seed{i}'), {}, [{'step': 10, 'epoch': 1.0, 'loss': 1.0}],
                         [{'step': 10, 'epoch': 1.0, 'accuracy': a}], 10, 10) for i, a in enumerate(accuracies)]
        return PointSummary(name, runs, {'model.name': name}, [], [])

    # resnet20 and plain20: the one axis left is the model family, which names no bar on its own
    points = [point('resnet20', [0.9, 0.8]), point('plain20', [0.7, 0.6])]
    figures = []
    monkeypatch.setattr(plots, '_save', lambda fig, directory, stem: figures.append((stem, fig)) or stem)
    made = plots.make_plots(str(tmp_path / 'plots'), points, ['model.name'], 'study')
    assert [stem for stem, _ in figures] == ['curves', 'bars'], made
    bars = dict(figures)['bars'].axes[0]
    assert [t.get_text() for t in bars.get_yticklabels()] == ['resnet20', 'plain20']  # not 'resnet', 'plain'
    assert 'bars = ±1 sample std over seeds' in bars.get_title()
    assert 'band = min–max over seeds' in dict(figures)['curves']._suptitle.get_text()


def test_report_lists_a_run_whose_config_has_no_seed_after_the_seeded_ones(tmp_path):
    # a config.json written by hand may lack the seed: sorting the seeds compared None with an int
    for run, config in (('a/seed1', {'seed': 1}), ('b', {}), ('a/seed0', {'seed': 0})):
        os.makedirs(tmp_path / run)
        with open(tmp_path / run / 'config.json', 'w') as f:
            json.dump(config, f)
    text, _ = write_report(str(tmp_path), plots=False)
    assert '(seeds 0, 1, None)' in text, text
