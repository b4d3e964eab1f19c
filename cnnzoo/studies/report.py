r"""A study's table and figures, derived only from what its runs wrote.

    python scripts/report.py runs/he2016        # a sweep directory (scripts/sweep.py), or one run's

Reads every run directory under the given one (a directory holding ``config.json``; finished or not)
and its ``metrics.jsonl``, and writes beside them ``report.md``, ``report.csv`` and ``plots/*.png``
(+ ``.svg``, :mod:`cnnzoo.studies.plots`); the Markdown table is also printed. Nothing comes from the memory
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
import json
import os
import time
from collections.abc import Callable

from cnnzoo.errors import ConfigError
from cnnzoo.run.workdir import find_runs
from cnnzoo.studies.points import PointSummary, group_points, mean_std, varying_keys


def _fmt(mean, std, digits=2) -> str:
    if mean is None:
        return '–'
    return f'{mean:.{digits}f}' + (f' ± {std:.{digits}f}' if std is not None else '')


def _fmt_value(value) -> str:
    return '(default)' if value is None else ', '.join(map(str, value)) if isinstance(value, tuple) else str(value)


def table_rows(points: list[PointSummary], keys: list[str]) -> tuple[list[str], list[list[str]]]:
    """The report table's header and one row of text per point."""
    header = ['point', *keys, 'n', 'final test acc (%)', 'best test acc (%)', 'final train loss', 'epochs',
              'train time (s)', 'images/s', 'wall (s)', 'state']
    rows = []
    for p in points:
        done, total = p.values('epochs_done'), max(p.values('epochs_total'), default=None)
        epochs = '–' if not done else (_epochs(min(done)) if min(done) == max(done)
                                       else f'{_epochs(min(done))}–{_epochs(max(done))}')
        epochs += f'/{_epochs(total)}' if done and total else ''
        rows.append([p.name, *(_fmt_value(p.settings.get(k)) for k in keys), str(p.n),
                     _fmt(*mean_std(p.values('final_accuracy'))), _fmt(*mean_std(p.values('best_accuracy'))),
                     _fmt(mean_std(p.values('final_train_loss'))[0], None, 4), epochs,
                     _fmt(mean_std(p.values('train_seconds'))[0], None, 1),
                     _fmt(mean_std(p.values('images_per_sec'))[0], None, 0),
                     _fmt(mean_std(p.wall_seconds)[0], None, 1), p.state])
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table of ``header`` and ``rows``, the numeric columns right-aligned."""
    def line(cells):
        return '| ' + ' | '.join(c.replace('|', '\\|') for c in cells) + ' |'

    numeric = set(range(len(header) - 8, len(header) - 1))
    rule = '|' + '|'.join('---:' if i in numeric else '---' for i in range(len(header))) + '|'
    return '\n'.join([line(header), rule, *(line(r) for r in rows)])


def write_csv(path: str, points: list[PointSummary], keys: list[str]) -> None:
    """``report.csv``: one row per point, every number at full precision, mean and std apart."""
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
    """The study's name: its experiment file's, else its directory's."""
    config = manifest.get('config')
    return os.path.splitext(os.path.basename(config))[0] if config else os.path.basename(os.path.abspath(root))


def write_report(root: str, *, plots: bool = True,
                 say: Callable[[str], None] = lambda line: None) -> tuple[str, str]:
    """Writes ``report.md``, ``report.csv`` and the figures under ``root``; returns the Markdown
    document and its table, and ``say``s what it is doing as it goes (the runs read, each figure
    written). A ``root`` that is not a directory holding a run is a ConfigError."""
    if not os.path.isdir(root):
        raise ConfigError(f'{root}: ' + ('not a directory' if os.path.exists(root) else 'not found')
                          + ' (cnnzoo report DIR: a sweep directory, or one run directory)')
    try:
        with open(os.path.join(root, 'sweep.json')) as f:
            manifest = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        manifest = {}
    started = time.perf_counter()
    points = group_points(root, find_runs(root), manifest)
    runs = sum(len(p.runs) for p in points)
    say(f'report {root}: read {runs} run{"s" * (runs != 1)} of {len(points)} point{"s" * (len(points) != 1)} '
        f'in {time.perf_counter() - started:.1f} s' + ('; drawing the figures' if plots else ''))
    keys = varying_keys(points)
    name = study_name(root, manifest)
    header, rows = table_rows(points, keys)
    # A config.json without a seed (written by hand) sorts last instead of failing the comparison.
    seeds = sorted({r.config.get('seed') for p in points for r in p.runs}, key=lambda s: (s is None, s or 0))
    lines = [f'# {name}', '',
             (f'{len(points)} points, {runs} runs (seeds {", ".join(map(str, seeds))}) under `{root}`; '
              'made by `cnnzoo report` from each run\'s `config.json` and `metrics.jsonl`.'), '',
             markdown_table(header, rows), '',
             ('Accuracy: mean ± sample standard deviation (ddof=1) over the n runs of a point that have '
              'evaluated; final = the evaluation at the last step reached, best = the best evaluation of a run. '
              'Train time counts training steps only (from the logged images/s); wall is the loop\'s own time '
              'as the sweep manifest recorded it (summed over resumes). In the figures, the learning curves\' '
              'bands are the min–max over seeds (with two or three seeds a standard deviation per epoch is '
              'little more than noise; the band shows where every run went), while the bars on final test error '
              'are ±1 sample standard deviation, the spread this table gives.'), '']
    failed = [(k, e.get('error')) for k, e in sorted(manifest.get('runs', {}).items()) if e.get('state') == 'failed']
    if failed:
        lines += ['Failed runs (from sweep.json):', '', *(f'- `{k}`: {err}' for k, err in failed), '']
    constant = {k: v for k, v in points[0].settings.items() if k not in keys}
    lines += ['<details><summary>Settings shared by every point</summary>', '',
              *(f'- `{k}` = `{_fmt_value(v)}`' for k, v in constant.items()), '', '</details>', '']
    if plots:
        from cnnzoo.studies.plots import make_plots

        for title, path in make_plots(os.path.join(root, 'plots'), points, keys, name, say):
            rel = os.path.relpath(path, root)
            lines += [f'![{title}]({rel}) ([SVG]({os.path.splitext(rel)[0]}.svg))', '']
    text = '\n'.join(lines)
    with open(os.path.join(root, 'report.md'), 'w') as f:
        f.write(text)
    write_csv(os.path.join(root, 'report.csv'), points, keys)
    return text, markdown_table(header, rows)


def _epochs(x: float) -> str:
    """A number of epochs as the table shows it, done and planned alike: ``0.103``, ``40``, ``164``."""
    return f'{x:.3g}' if x < 100 else f'{x:.0f}'
