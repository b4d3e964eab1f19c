"""A study's grid points, each the runs of its seeds, and the numbers a report shows of them.

Runs are grouped into points by directory: ``POINT/seedK`` (the sweep's layout) is seed K of POINT;
any other run directory is a point of its own. Every number comes from the runs' own files
(:func:`cnnzoo.run.workdir.read_run`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import statistics
from collections.abc import Sequence

from cnnzoo.run.workdir import NOT_DEFINING, RunFiles, is_locked

# What a point's settings leave out: the keys that do not define a run, and the seed, which tells
# the runs of one point apart.
NOT_SETTINGS = NOT_DEFINING | {'seed'}


@dataclasses.dataclass
class PointSummary:
    """One grid point: its runs (seeds) and the numbers of the table."""

    name: str
    runs: list[RunFiles]
    settings: dict  # flattened config of the point (its first run's, seed aside)
    wall_seconds: list[float]
    failures: list[str]

    def values(self, metric: str) -> list[float]:
        """``metric`` (:func:`run_metric`) of every run of the point that has it."""
        return [v for v in (run_metric(r, metric) for r in self.runs) if v is not None]

    @property
    def n(self) -> int:
        """How many runs of the point have evaluated at least once."""
        return len(self.values('final_accuracy'))

    @property
    def state(self) -> str:
        """``done``, or how far the point's runs got (``in progress: ...``)."""
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
    """``runs`` grouped into grid points (``POINT/seedK`` is seed K of POINT), in the grid's order when the
    manifest gives one; each point's settings, wall times and failures from the manifest."""
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
        settings = {k: v for k, v in members[0].flat.items() if k not in NOT_SETTINGS}
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
