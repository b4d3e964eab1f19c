"""The figures of a study report (:mod:`cnnzoo.studies.report`), chosen from the shape of its grid.

- Always: learning curves, training loss and test error against epochs, one line per point (mean
  over seeds, min-max band: every seed's run lies inside it), as He et al. (2016) Figure 6; grids
  of more than 12 points are split into panels by one of their axes.
- The grid's axes are the varying config keys, with ``model.name`` split into family and depth when
  every name is a family and a layer count (``resnet56``, ``plain20``), and keys that follow from the
  others dropped (``resnet110``'s warm-up). Then, by the number of axes:
  one numeric axis (with at most one categorical one beside it): final test error against it, one
  line per category (error against depth, He et al. Table 6); one categorical axis: a bar chart;
  two categorical axes: an annotated heat map of final test accuracy; three: one heat map per value
  of the shortest axis; more: horizontal bars, one per point, sorted. Bars and error bars are the
  table's mean ± sample standard deviation over seeds; each bar is labelled with its point's name.

Matplotlib with the Agg backend; each figure is written as PNG and SVG.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # after choosing the backend

from cnnzoo.studies.points import PointSummary, mean_std

MAX_LINES = 12
# The two spreads the figures draw, said on each: a curve's band holds every seed's run (with two or
# three seeds a per-epoch standard deviation is noise); a final figure's bar is the table's ±1 std.
SPREAD_BANDS = 'band = min–max over seeds; final-error figures: ±1 std'
SPREAD_BARS = 'bars = ±1 sample std over seeds; curves: min–max band'
LABELS = {
    'model.name': 'model', 'family': 'model family', 'depth': 'depth (layers)',
    'model.activation': 'activation', 'model.residual': 'residual form', 'model.shortcut': 'shortcut',
    'schedule.ratio': 'LR schedule (phase ratio)', 'schedule.name': 'LR schedule',
    'schedule.warmup_epochs': 'warm-up (epochs)', 'data.augment': 'augmentation',
    'optimizer.name': 'optimizer', 'optimizer.learning_rate': 'learning rate',
    'optimizer.weight_decay': 'weight decay', 'training.batch_size': 'batch size (images)',
    'training.num_epochs': 'training length (epochs)',
}
NAME_DEPTH = re.compile(r'([A-Za-z_]*[A-Za-z])(\d+)')


def label(key: str) -> str:
    """The axis label of a config key (with its unit where it has one)."""
    return LABELS.get(key, key.rsplit('.', 1)[-1].replace('_', ' '))


def grid_axes(points: list[PointSummary], keys: list[str]) -> tuple[list[str], dict[str, dict]]:
    """The axes of the grid and each point's coordinates on them."""
    coords = {p.name: {k: p.settings.get(k) for k in keys} for p in points}
    names = [c.get('model.name') for c in coords.values()]
    if 'model.name' in keys and all(isinstance(n, str) and NAME_DEPTH.fullmatch(n) for n in names):
        i = keys.index('model.name')
        keys = keys[:i] + ['family', 'depth'] + keys[i + 1:]
        for c in coords.values():
            family, depth = NAME_DEPTH.fullmatch(c.pop('model.name')).groups()
            c.update(family=family, depth=int(depth))
    axes = list(keys)
    for key in sorted(keys, key=lambda k: len({repr(c[k]) for c in coords.values()})):
        others = [a for a in axes if a != key]
        seen: dict[tuple[str, ...], str] = {}
        determined = all(seen.setdefault(tuple(repr(c[a]) for a in others), repr(c[key])) == repr(c[key])
                         for c in coords.values())
        if determined and others:
            axes.remove(key)
    axes = [a for a in axes if len({repr(c[a]) for c in coords.values()}) > 1]
    return axes, {n: {a: c[a] for a in axes} for n, c in coords.items()}


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _ordered(values) -> list:
    unique = list(dict.fromkeys(values))
    return sorted(unique) if _numeric(unique) else unique


def _save(fig, directory: str, stem: str) -> str:
    os.makedirs(directory, exist_ok=True)
    png = os.path.join(directory, f'{stem}.png')
    fig.savefig(png, dpi=130, bbox_inches='tight')
    fig.savefig(os.path.join(directory, f'{stem}.svg'), bbox_inches='tight')
    plt.close(fig)
    return png


def make_plots(directory: str, points: list[PointSummary], keys: list[str], study: str,
               say: Callable[[str], None] = lambda line: None) -> list[tuple[str, str]]:
    """Writes the figures of the study; returns ``(title, png path)`` for each, and ``say``s each
    (its file and title) as it is written."""
    axes, coords = grid_axes(points, keys)
    out = []

    def add(title: str, path: str) -> None:
        out.append((title, path))
        say(f'wrote {path} ({title})')

    if any(r.evals or r.train for p in points for r in p.runs):
        add('learning curves', learning_curves(directory, points, axes, coords, study))
    scored = [p for p in points if p.n]
    if not scored or not axes:
        return out
    numeric = [a for a in axes if _numeric(coords[p.name][a] for p in scored)]
    if len(numeric) == 1 and len(axes) <= 2:
        add(f'test error against {label(numeric[0])}',
            error_against(directory, scored, coords, numeric[0], [a for a in axes if a != numeric[0]], study))
    elif len(axes) == 1:
        add(f'test error by {label(axes[0])}', bars(directory, scored, coords, axes, study))
    elif len(axes) in (2, 3):
        add('final test accuracy', heat_maps(directory, scored, coords, axes, study))
    else:
        add('final test error by point', bars(directory, scored, coords, axes, study))
    return out


def _seeds_note(points: list[PointSummary]) -> str:
    ns = sorted({p.n for p in points})
    return f'mean over {ns[0]} seed{"s" if ns[0] > 1 else ""}' if len(ns) == 1 else f'mean over {ns[0]}–{ns[-1]} seeds'


def _curve(runs, records, value):
    """Mean, min and max over runs at each step: ``(epochs, mean, lo, hi)``."""
    by_step = {}
    for run in runs:
        for r in records(run):
            by_step.setdefault(r['step'], (r['epoch'], []))[1].append(value(r))
    steps = sorted(by_step)
    epochs = [by_step[s][0] for s in steps]
    vals = [by_step[s][1] for s in steps]
    return epochs, [sum(v) / len(v) for v in vals], [min(v) for v in vals], [max(v) for v in vals]


def _facets(points, axes, coords):
    """Panels of at most MAX_LINES points, split by the axis that does it with the fewest panels."""
    if len(points) <= MAX_LINES:
        return None, [points]
    best = None
    for axis in axes:
        values = _ordered(coords[p.name][axis] for p in points)
        groups = [[p for p in points if coords[p.name][axis] == v] for v in values]
        if max(map(len, groups)) <= MAX_LINES and (best is None or len(groups) < len(best[1])):
            best = (axis, groups)
    return best or (None, [points])


def learning_curves(directory, points, axes, coords, study) -> str:
    """Training loss and test error against epochs, one line per point (mean over seeds, min-max band);
    returns the PNG path."""
    facet, groups = _facets(points, axes, coords)
    fig, grid = plt.subplots(len(groups), 2, figsize=(12, 3.6 * len(groups)), squeeze=False)
    for row, group in zip(grid, groups):
        colours = plt.get_cmap('tab10' if len(group) <= 10 else 'tab20')
        for i, p in enumerate(group):
            colour = colours(i % colours.N)
            line_label = p.name
            for ax, records, value in (
                    (row[0], lambda r: r.train, lambda r: r['loss']),
                    (row[1], lambda r: r.evals, lambda r: 100 * (1 - r['accuracy']))):
                epochs, mean, lo, hi = _curve(p.runs, records, value)
                if not epochs:
                    continue
                ax.plot(epochs, mean, color=colour, lw=1.4, label=line_label,
                        marker='o' if len(epochs) <= 3 else None, ms=4)
                if len(p.runs) > 1:
                    ax.fill_between(epochs, lo, hi, color=colour, alpha=0.18, lw=0)
        row[0].set_ylabel('training loss')
        row[1].set_ylabel('test error (%)')
        for ax in row:
            ax.set_xlabel('epoch')
            ax.grid(alpha=0.3)
        if facet is not None:
            row[0].set_title(f'{label(facet)} = {coords[group[0].name][facet]}', loc='left', fontsize=10)
        legend: dict[str, Any] = {}  # label -> artist: one entry a label across the row
        for ax in row:
            legend.update(zip(*reversed(ax.get_legend_handles_labels())))
        row[1].legend(legend.values(), legend.keys(), loc='upper left', bbox_to_anchor=(1.02, 1.0), fontsize=8,
                      frameon=False)
    fig.suptitle(f'{study}: learning curves ({_seeds_note(points) if any(p.n for p in points) else "per seed"}, '
                 f'{SPREAD_BANDS})', y=1.0)
    fig.tight_layout()
    return _save(fig, directory, 'curves')


def error_against(directory, points, coords, axis, others, study) -> str:
    """Final test error against the one numeric axis, one line per value of the others; returns the
    PNG path."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    groups: dict[tuple, list[PointSummary]] = {}
    for p in points:
        key = tuple(coords[p.name][o] for o in others)
        groups.setdefault(key, []).append(p)
    for key, group in groups.items():
        group.sort(key=lambda p: coords[p.name][axis])
        xs = [coords[p.name][axis] for p in group]
        stats = [mean_std(p.values('final_error')) for p in group]
        ax.errorbar(xs, [m for m, _ in stats], yerr=[s or 0 for _, s in stats], marker='o', capsize=3,
                    label=', '.join(map(str, key)) or 'all points')
        if len(set(xs)) > 1:
            ax.set_xticks(sorted({x for g in groups.values() for x in (coords[p.name][axis] for p in g)}))
    ax.set_xlabel(label(axis))
    ax.set_ylabel('final test error (%)')
    ax.grid(alpha=0.3)
    if others:
        ax.legend(title=', '.join(label(o) for o in others), loc='upper left', bbox_to_anchor=(1.02, 1.0),
                  frameon=False)
    ax.set_title(f'{study}: test error against {label(axis)} ({_seeds_note(points)}, {SPREAD_BARS})')
    return _save(fig, directory, f'error_vs_{re.sub(r"[^a-z0-9]+", "_", label(axis).split(" (")[0])}')


def bars(directory, points, coords, axes, study) -> str:
    """Final test error of every point as bars (mean over seeds, error bar one standard deviation);
    returns the PNG path."""
    if len(axes) == 1:  # in the axis's order
        order = {v: i for i, v in enumerate(_ordered(coords[p.name][axes[0]] for p in points))}
        points = sorted(points, key=lambda p: order[coords[p.name][axes[0]]])
    else:
        points = sorted(points, key=lambda p: mean_std(p.values('final_error'))[0])
    names = [p.name for p in points]  # each bar is a point: its name, never one coordinate of it
    stats = [mean_std(p.values('final_error')) for p in points]
    height = max(3.0, 0.32 * len(points) + 1.2)
    fig, ax = plt.subplots(figsize=(8, height))
    ys = range(len(points))
    ax.barh(ys, [m for m, _ in stats], xerr=[s or 0 for _, s in stats], color='#4c72b0', capsize=3)
    for y, (m, s) in zip(ys, stats):
        ax.text(m + (s or 0), y, f'  {m:.2f}', va='center', fontsize=8)
    ax.set_yticks(list(ys), names, fontsize=8 if len(points) > 12 else 10)
    ax.invert_yaxis()
    ax.set_xlabel('final test error (%)')
    ax.set_ylabel('point' + (f' (by {label(axes[0])})' if len(axes) == 1 else ''))
    ax.margins(x=0.12)
    ax.grid(axis='x', alpha=0.3)
    ax.set_title(f'{study}: final test error ({_seeds_note(points)}, {SPREAD_BARS})')
    return _save(fig, directory, 'bars')


def heat_maps(directory, points, coords, axes, study) -> str:
    """Annotated heat maps of final test accuracy over two categorical axes (one per value of a third);
    returns the PNG path."""
    counts = {a: len({repr(coords[p.name][a]) for p in points}) for a in axes}
    facet = min(axes, key=lambda a: counts[a]) if len(axes) == 3 else None
    rows_axis, cols_axis = sorted((a for a in axes if a != facet), key=lambda a: -counts[a])
    facet_values = _ordered(coords[p.name][facet] for p in points) if facet else [None]
    row_values = _ordered(coords[p.name][rows_axis] for p in points)
    col_values = _ordered(coords[p.name][cols_axis] for p in points)
    means = [m for p in points for m in [mean_std(p.values('final_accuracy'))[0]]]
    vmin, vmax = min(means), max(means)
    fig, grid = plt.subplots(1, len(facet_values), squeeze=False,
                             figsize=(1.3 * len(col_values) * len(facet_values) + 2.4, 0.6 * len(row_values) + 1.8))
    image = None
    for ax, fv in zip(grid[0], facet_values):
        cells = [[None] * len(col_values) for _ in row_values]
        for p in points:
            c = coords[p.name]
            if facet is None or c[facet] == fv:
                cells[row_values.index(c[rows_axis])][col_values.index(c[cols_axis])] = p
        data = [[float('nan') if p is None else mean_std(p.values('final_accuracy'))[0] for p in row] for row in cells]
        image = ax.imshow(data, cmap='viridis', vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1, aspect='auto')
        for i, row in enumerate(cells):
            for j, p in enumerate(row):
                if p is None:
                    continue
                m, s = mean_std(p.values('final_accuracy'))
                bright = (m - vmin) / ((vmax - vmin) or 1) > 0.6
                ax.text(j, i, f'{m:.2f}' + (f'\n±{s:.2f}' if s is not None else ''), ha='center', va='center',
                        fontsize=8, color='black' if bright else 'white')
        slant = max(len(str(v)) for v in col_values) > 12  # long labels would run into each other
        ax.set_xticks(range(len(col_values)), [str(v) for v in col_values],
                      rotation=20 if slant else 0, ha='right' if slant else 'center')
        first = ax is grid[0][0]
        ax.set_yticks(range(len(row_values)), [str(v) for v in row_values] if first else [])
        ax.set_xlabel(label(cols_axis))
        if first:
            ax.set_ylabel(label(rows_axis))
        if facet is not None:
            ax.set_title(f'{label(facet)} = {fv}', fontsize=10)
    fig.colorbar(image, ax=list(grid[0]), label='final test accuracy (%)', shrink=0.9)
    fig.suptitle(f'{study}: final test accuracy (%) ({_seeds_note(points)})')
    return _save(fig, directory, 'heatmap')
