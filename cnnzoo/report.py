r"""A study's table and figures, derived only from what its runs wrote.

    python scripts/report.py runs/he2016        # a sweep directory (scripts/sweep.py), or one run's

Reads every run directory under the given one (a directory holding ``config.json``; finished or not)
and its ``metrics.jsonl``, and writes beside them ``report.md``, ``report.csv`` and ``plots/*.png``
(+ ``.svg``, :mod:`cnnzoo.plots`); the Markdown table is also printed. Nothing comes from the memory
of a sweep process, so the report can be rebuilt at any time, from a partial sweep too.

Runs are grouped into grid points by directory: ``POINT/seedK`` (the sweep's layout) is seed K of
POINT; any other run directory is a point of its own. One row per point, in the grid's order when
the sweep's manifest is there:

- the config keys that differ between points (the constant ones are listed apart);
- n, the runs of the point that have evaluated at least once;
- final and best test accuracy (%): the evaluation at the last step a run reached and the best
  evaluation of the run, each as mean ± sample standard deviation (ddof=1) over the n runs;
- final training loss (the last logged window; mean over runs), epochs done out of planned;
- train time: the logged training windows' steps x batch / images-per-second summed, i.e. time in
  training steps only (no compilation, evaluation or checkpointing); images/s: images over that time;
- wall: from the sweep's manifest (``sweep.json``), the loop's own wall time summed over the run's
  attempts, where the sweep recorded it; ``metrics.jsonl`` holds no clock time;
- state: ``done``, or how far a run in progress got (``running`` when a process holds it now).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import fcntl
import json
import os
import re
import statistics
import sys
from collections.abc import Sequence

from cnnzoo.config import ConfigError

# Settings that do not define a run: where data is read from and what is printed.
IGNORED_KEYS = {'seed', 'data.source', 'data.archive', 'data.data_dir', 'training.progress_bar',
                'training.log_every_steps', 'training.checkpoint_every_steps', 'training.keep_checkpoints',
                'training.eval_batch_size', 'training.compilation_cache', 'data.workers', 'data.manual_dir'}
SKIP_DIRS = {'checkpoints', 'best', 'tb', 'plots'}


@dataclasses.dataclass
class RunFiles:
    """One run directory as written by the loop: its config and its metrics records."""

    directory: str
    config: dict
    train: list[dict]
    evals: list[dict]
    steps_per_epoch: int | None
    total_steps: int | None

    @property
    def steps_done(self) -> int:
        return max((r['step'] for r in self.train + self.evals), default=0)

    @property
    def finished(self) -> bool:
        return self.total_steps is not None and any(r['step'] == self.total_steps for r in self.evals)

    @property
    def flat(self) -> dict:
        """The config as dotted keys; keys the schema gained after the run started at their defaults."""
        flat = flatten(self.config)
        return {**flat, **{k: v for k, v in _schema_defaults().items() if k not in flat}}


@functools.cache
def _schema_defaults() -> dict:
    from cnnzoo.config import default_config, to_json

    return flatten(json.loads(to_json(default_config())))


def flatten(d: dict, prefix: str = '') -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = tuple(value) if isinstance(value, list) else value
    return out


def read_run(directory: str) -> RunFiles | None:
    """The run in ``directory``, or None when it has no ``config.json`` yet."""
    try:
        with open(os.path.join(directory, 'config.json')) as f:
            config = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    by_key = {}
    path = os.path.join(directory, 'metrics.jsonl')
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                by_key[(record.get('split'), record.get('step'))] = record
    records = sorted(by_key.values(), key=lambda r: r['step'])
    train = [r for r in records if r.get('split') == 'train']
    evals = [r for r in records if r.get('split') != 'train' and 'accuracy' in r]
    # Records carry step and epoch = step / steps_per_epoch: the epoch length without reading the data.
    spe = next((round(r['step'] / r['epoch']) for r in records if r.get('epoch')), None)
    return RunFiles(directory, config, train, evals, spe, _total_steps(config, spe))


def _total_steps(config: dict, steps_per_epoch: int | None) -> int | None:
    training = config.get('training', {})
    if training.get('num_steps', 0) > 0:
        return int(training['num_steps'])
    if steps_per_epoch is None:
        return None
    from cnnzoo.training.schedules import steps_from_epochs  # the one epochs -> steps conversion

    return steps_from_epochs(training.get('num_epochs', 0.0), steps_per_epoch)


def same_run_config(files: RunFiles, config) -> bool:
    """Whether the run in ``files`` is the run ``config`` describes (settings that do not change the
    trajectory aside, as on resume)."""
    from cnnzoo.config import to_json
    from cnnzoo.workdir import RESUMABLE_CHANGES

    saved = files.flat  # keys the schema gained since count at their defaults, as the loop counts them
    wanted = flatten(json.loads(to_json(config)))
    return all(saved.get(k) == wanted.get(k) for k in saved.keys() | wanted.keys() if k not in RESUMABLE_CHANGES)


def is_locked(directory: str) -> bool:
    """Whether a process holds the run's lock now (cnnzoo.workdir.WorkdirLock), i.e. it is training."""
    path = os.path.join(directory, '.lock')
    if not os.path.exists(path):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def find_runs(root: str) -> list[RunFiles]:
    """Every run directory at or under ``root``, in path order."""
    if not os.path.isdir(root):
        raise ConfigError(f'{root} is not a directory')
    runs = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIP_DIRS and not d.startswith('.'))
        if 'config.json' in files:
            run = read_run(directory)
            if run is not None and run.flat.get('training.num_seeds', 1) > 1:
                continue  # several seeds trained together: their seed<N>/ directories are the runs
            if run is not None:
                runs.append(run)
            subdirs[:] = []
    if not runs:
        raise ConfigError(f'no run under {root} (a run directory holds config.json, written when a run starts)')
    return runs


# ---------------------------------------------------------------------------------------------
# Aggregation


@dataclasses.dataclass
class PointSummary:
    """One grid point: its runs (seeds) and the numbers of the table."""

    name: str
    runs: list[RunFiles]
    settings: dict  # flattened config of the point (its first run's, seed aside)
    wall_seconds: list[float]
    failures: list[str]

    def values(self, metric: str) -> list[float]:
        return [v for v in (run_metric(r, metric) for r in self.runs) if v is not None]

    @property
    def n(self) -> int:
        return len(self.values('final_accuracy'))

    @property
    def state(self) -> str:
        if self.runs and all(r.finished for r in self.runs):
            return 'done'
        done = sum(r.finished for r in self.runs)
        running = sum(is_locked(r.directory) for r in self.runs if not r.finished)
        text = f'in progress: {done}/{len(self.runs)} runs done' + (f', {running} running' if running else '')
        return text + (f', {len(self.failures)} failed' if self.failures else '')


def run_metric(run: RunFiles, metric: str) -> float | None:
    """One number of one run, from its records (None when it has none yet)."""
    if metric == 'final_accuracy':
        return 100 * run.evals[-1]['accuracy'] if run.evals else None
    if metric == 'best_accuracy':
        return 100 * max(r['accuracy'] for r in run.evals) if run.evals else None
    if metric == 'final_error':
        return 100 * (1 - run.evals[-1]['accuracy']) if run.evals else None
    if metric == 'final_train_loss':
        return run.train[-1]['loss'] if run.train else None
    if metric == 'epochs_done':
        return run.steps_done / run.steps_per_epoch if run.steps_per_epoch else None
    if metric == 'epochs_total':
        return run.total_steps / run.steps_per_epoch if run.steps_per_epoch and run.total_steps else None
    if metric in ('train_seconds', 'images_per_sec'):
        batch = run.config.get('training', {}).get('batch_size', 0)
        seconds, images, previous = 0.0, 0, 0
        for r in run.train:
            if r.get('images_per_sec'):
                seconds += (r['step'] - previous) * batch / r['images_per_sec']
                images += (r['step'] - previous) * batch
            previous = r['step']
        if not seconds:
            return None
        return seconds if metric == 'train_seconds' else images / seconds
    raise KeyError(metric)


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1; None for fewer than two values)."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def group_points(root: str, runs: list[RunFiles], manifest: dict) -> list[PointSummary]:
    groups: dict[str, list[RunFiles]] = {}
    for run in runs:
        rel = os.path.relpath(run.directory, root)
        if rel == '.':
            name = os.path.basename(os.path.abspath(root))
        elif re.fullmatch(r'seed\d+', os.path.basename(rel)) and os.path.dirname(rel):
            name = os.path.dirname(rel)
        else:
            name = rel
        groups.setdefault(name, []).append(run)
    entries = manifest.get('runs', {})
    grid_order = {p.get('name'): i for i, p in enumerate(manifest.get('points', []))}
    points = []
    for name, members in sorted(groups.items(), key=lambda g: (grid_order.get(g[0], len(grid_order)), g[0])):
        settings = {k: v for k, v in members[0].flat.items() if k not in IGNORED_KEYS}
        mine = [e for e in entries.values() if e.get('point') == name]
        wall = [e['wall_seconds'] for e in mine if e.get('wall_seconds')]
        failures = [e.get('error') or 'failed' for e in mine if e.get('state') == 'failed']
        points.append(PointSummary(name, members, settings, wall, failures))
    return points


def varying_keys(points: list[PointSummary]) -> list[str]:
    """The config keys whose values differ between points, in schema order."""
    keys = []
    for p in points:
        keys += [k for k in p.settings if k not in keys]
    return [k for k in keys if len({repr(p.settings.get(k)) for p in points}) > 1]


# ---------------------------------------------------------------------------------------------
# Output


def _fmt(mean, std, digits=2) -> str:
    if mean is None:
        return '–'
    return f'{mean:.{digits}f}' + (f' ± {std:.{digits}f}' if std is not None else '')


def _fmt_value(value) -> str:
    return '(default)' if value is None else ', '.join(map(str, value)) if isinstance(value, tuple) else str(value)


def table_rows(points: list[PointSummary], keys: list[str]) -> tuple[list[str], list[list[str]]]:
    header = ['point', *keys, 'n', 'final test acc (%)', 'best test acc (%)', 'final train loss', 'epochs',
              'train time (s)', 'images/s', 'wall (s)', 'state']
    rows = []
    for p in points:
        done, total = p.values('epochs_done'), max(p.values('epochs_total'), default=None)
        epochs = '–' if not done else (f'{min(done):.3g}' if min(done) == max(done)
                                       else f'{min(done):.3g}–{max(done):.3g}')
        epochs += f'/{total:g}' if done and total else ''
        rows.append([p.name, *(_fmt_value(p.settings.get(k)) for k in keys), str(p.n),
                     _fmt(*mean_std(p.values('final_accuracy'))), _fmt(*mean_std(p.values('best_accuracy'))),
                     _fmt(mean_std(p.values('final_train_loss'))[0], None, 4), epochs,
                     _fmt(mean_std(p.values('train_seconds'))[0], None, 1),
                     _fmt(mean_std(p.values('images_per_sec'))[0], None, 0),
                     _fmt(mean_std(p.wall_seconds)[0], None, 1), p.state])
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return '| ' + ' | '.join(c.replace('|', '\\|') for c in cells) + ' |'

    numeric = set(range(len(header) - 8, len(header) - 1))
    rule = '|' + '|'.join('---:' if i in numeric else '---' for i in range(len(header))) + '|'
    return '\n'.join([line(header), rule, *(line(r) for r in rows)])


def write_csv(path: str, points: list[PointSummary], keys: list[str]) -> None:
    metrics = ('final_accuracy', 'best_accuracy', 'final_train_loss', 'train_seconds', 'images_per_sec')
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['point', *keys, 'n', 'seeds',
                         *(f'{m}_{s}' for m in metrics for s in ('mean', 'std')),
                         'epochs_done', 'epochs_total', 'wall_seconds', 'state'])
        for p in points:
            stats = [x for m in metrics for x in mean_std(p.values(m))]
            writer.writerow([p.name, *(_fmt_value(p.settings.get(k)) for k in keys), p.n,
                             ' '.join(str(r.config.get('seed')) for r in p.runs),
                             *('' if x is None else repr(x) for x in stats),
                             max(p.values('epochs_done'), default=''), max(p.values('epochs_total'), default=''),
                             sum(p.wall_seconds) / len(p.wall_seconds) if p.wall_seconds else '', p.state])


def study_name(root: str, manifest: dict) -> str:
    config = manifest.get('config')
    return os.path.splitext(os.path.basename(config))[0] if config else os.path.basename(os.path.abspath(root))


def write_report(root: str, *, plots: bool = True) -> tuple[str, str]:
    """Writes ``report.md``, ``report.csv`` and the figures under ``root``; returns the Markdown
    document and its table."""
    try:
        with open(os.path.join(root, 'sweep.json')) as f:
            manifest = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        manifest = {}
    points = group_points(root, find_runs(root), manifest)
    keys = varying_keys(points)
    name = study_name(root, manifest)
    header, rows = table_rows(points, keys)
    seeds = sorted({r.config.get('seed') for p in points for r in p.runs})
    runs = sum(len(p.runs) for p in points)
    lines = [f'# {name}', '',
             (f'{len(points)} points, {runs} runs (seeds {", ".join(map(str, seeds))}) under `{root}`; '
              'made by `scripts/report.py` from each run\'s `config.json` and `metrics.jsonl`.'), '',
             markdown_table(header, rows), '',
             ('Accuracy: mean ± sample standard deviation (ddof=1) over the n runs of a point that have '
              'evaluated; final = the evaluation at the last step reached, best = the best evaluation of a run. '
              'Train time counts training steps only (from the logged images/s); wall is the loop\'s own time '
              'as the sweep manifest recorded it (summed over resumes).'), '']
    failed = [(k, e.get('error')) for k, e in sorted(manifest.get('runs', {}).items()) if e.get('state') == 'failed']
    if failed:
        lines += ['Failed runs (from sweep.json):', '', *(f'- `{k}`: {err}' for k, err in failed), '']
    constant = {k: v for k, v in points[0].settings.items() if k not in keys}
    lines += ['<details><summary>Settings shared by every point</summary>', '',
              *(f'- `{k}` = `{_fmt_value(v)}`' for k, v in constant.items()), '', '</details>', '']
    if plots:
        from cnnzoo.plots import make_plots

        for title, path in make_plots(os.path.join(root, 'plots'), points, keys, name):
            rel = os.path.relpath(path, root)
            lines += [f'![{title}]({rel}) ([SVG]({os.path.splitext(rel)[0]}.svg))', '']
    text = '\n'.join(lines)
    with open(os.path.join(root, 'report.md'), 'w') as f:
        f.write(text)
    write_csv(os.path.join(root, 'report.csv'), points, keys)
    return text, markdown_table(header, rows)


def report_main(argv: Sequence[str]) -> int:
    """``scripts/report.py DIR``: writes the report of DIR and prints its table."""
    from cnnzoo.cli import run_cli

    if any(a in ('-h', '--help') for a in argv) or len(argv) != 1 or argv[0].startswith('--'):
        print('usage: report.py DIR   (a sweep directory of scripts/sweep.py, or one run directory)\n'
              '  example: cnnzoo report runs/he2016   (writes runs/he2016/report.md, report.csv, plots/)',
              file=sys.stdout if argv else sys.stderr)
        return 0 if argv and argv[0] in ('-h', '--help') else 2

    def main():
        _, table = write_report(argv[0])
        print(table)
        print(f'wrote {os.path.join(argv[0], "report.md")}, report.csv and plots/')

    return run_cli(main)


__all__ = ['RunFiles', 'find_runs', 'is_locked', 'mean_std', 'read_run', 'report_main', 'run_metric',
           'same_run_config', 'write_report']
