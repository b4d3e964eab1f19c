r"""Studies: one command trains every point of an experiment file's grid, for every seed.

    python scripts/sweep.py --config experiments/he2016_cifar10.py --workdir runs/he2016 \
        [--seeds 0,1,2] [--only 'resnet20*,plain20*'] [--list] [--config.KEY=VALUE ...]

The sweep form
--------------
An experiment file that describes a study defines ``get_sweep()`` beside ``get_config()``. It
returns a list of points; each point is a dict of overrides of the file's own config::

    def get_sweep():
        return [{'model.name': 'resnet20', 'schedule.ratio': '5:3:2'},
                {'model.name': 'plain20'},
                {'config': 'experiments/vgg16_cifar10.py', 'optimizer.name': 'adam'}]

- A dotted key (``'model.name'``) is set to its Python value (str, int, float, bool, tuple) with the
  same checks as ``--config.KEY=VALUE``: an unknown key or a value of the wrong type is an error, and
  setting ``training.num_epochs`` clears ``training.num_steps`` (and the other way round).
- The one special key, ``'config'``, names another experiment file (relative to the repository root,
  or to the current directory) whose ``get_config()`` replaces the file's own as the base of this
  point: for points whose model sections differ (an override can add a model field, not remove one).
- A file without ``get_sweep()`` is a grid of one point, its own config.

Overrides on the command line apply to every point, after the point's own. ``--seeds`` sets
``config.seed`` of each run (default: the point's own seed). ``--vmap-seeds`` trains a point's seeds
(consecutive: ``--seeds 0,1,2``) as one program, ``training.num_seeds`` replicas in one program;
each replica writes the run directory its seed would have had, so the manifest, ``--list`` and the
report read the same layout. Every point is built and checked
(:func:`cnnzoo.run.validation.check_config`) before anything runs: a bad key or value anywhere in the grid
is one line and exit status 2, at ``--list`` time as well. Before the first run, the data of every
point is looked for as a run looks for it (:func:`check_data_found`): missing data is exit status 2
with nothing written.

What it writes
--------------
Each point x seed is an ordinary run directory, trained in this process by
:func:`cnnzoo.run.loop.train_and_evaluate` (the loop of ``scripts/train.py``)::

    runs/X/
      sweep.json                      the manifest: grid, command line, each run's state
      resnet20-ratio5_3_2/seed0/      config.json, metrics.jsonl, checkpoints/, ... (cnnzoo.run.workdir)
      plain20/seed0/

A point's directory name is made from its overrides (:func:`point_name`): the value alone for keys
whose values name themselves (``model.name``, ``model.activation``, ``model.residual``,
``optimizer.name``, ``schedule.name``), a short key and the value otherwise (``ratio5_3_2``,
``lr0.01``, ``aug_none``), joined by ``-``; ``base`` for a point without overrides. Characters
outside ``[A-Za-z0-9._+-]`` become ``_``; names that still collide get a hash of their overrides.

Runs share JAX's persistent compilation cache (``config.training.compilation_cache``, on by
default: see :func:`cnnzoo.run.setup.use_compilation_cache`), so the seeds of a point compile once.

The manifest records each run as ``pending``, ``running``, ``done``, ``failed`` (with its one-line
error) or ``interrupted`` (``--list`` also says ``differs`` for a directory that holds a run of
another config, which the loop refuses to resume); it is rewritten atomically under a lock after every change, so two sweep
processes may share a workdir (say, one per GPU with different ``--only``).

Running the command again skips the runs whose directory shows them finished (an evaluation at the
final step in ``metrics.jsonl``, with the same config) and resumes an interrupted one from its
checkpoint. A run that fails (a NaN loss, a data or config error found only at run time) is recorded
and the sweep goes on; the exit status is 1 if any run failed, else 0. When every run was refused at
its start (a config or data error), nothing ran: the sweep removes the directories it created and
exits with 2. A line per run says how it went: ``[i/N] POINT seed K: done at step S/T in 12 s``
(or ``failed after ...: the error``, or ``done, skipped``). SIGTERM or SIGINT stop the
current run at a step boundary with a checkpoint (as in ``scripts/train.py``); the sweep records it
as interrupted, starts nothing more and exits with 128 + the signal's number.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import fnmatch
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Sequence

import ml_collections

from cnnzoo.config import apply_overrides, literal_text, load_config_file, load_experiment_module
from cnnzoo.errors import ConfigError, DataError, RunError, first_line
from cnnzoo.run.signals import StopSignals
from cnnzoo.run.workdir import atomic_write, is_locked, locked, missing_parents, read_run, seed_dir

MANIFEST = 'sweep.json'
# Keys whose values say what they are ('tanh', 'plain56'); the others are written key + value.
VALUE_ONLY_KEYS = ('model.name', 'model.activation', 'model.residual', 'optimizer.name', 'schedule.name',
                   'data.augment_mode')
SHORT_KEYS = {
    'optimizer.learning_rate': 'lr', 'optimizer.weight_decay': 'wd', 'schedule.warmup_epochs': 'warmup',
    'data.augment': 'aug', 'training.num_epochs': 'epochs', 'training.num_steps': 'steps',
    'training.batch_size': 'batch', 'model.stage_sizes': 'stages',
}
MAX_NAME = 100


@dataclasses.dataclass
class Point:
    """One grid point: its name, its overrides as the file states them, its checked config."""

    name: str
    overrides: dict
    config: ml_collections.ConfigDict


@dataclasses.dataclass
class Run:
    """One run of the sweep: a point, a seed, its run directory and its config."""
    point: Point
    seed: int
    directory: str
    config: ml_collections.ConfigDict

    @property
    def key(self) -> str:
        """The run's key in the manifest: ``POINT/seed<N>``."""
        return seed_dir(self.point.name, self.seed)


# ---------------------------------------------------------------------------------------------
# The grid


def load_grid(path: str) -> list[dict]:
    """The points of an experiment file: ``get_sweep()``, or ``[{}]`` for a file without one."""
    module = load_experiment_module(path)
    try:
        points = module.get_sweep() if hasattr(module, 'get_sweep') else [{}]
    except Exception as e:  # any failure of a user's file is reported in one line
        raise ConfigError(f'{path}: {first_line(e, typed=True)}') from e
    if not isinstance(points, (list, tuple)) or not points:
        raise ConfigError(f'{path}: get_sweep() must return a non-empty list of dicts')
    for i, point in enumerate(points):
        if not isinstance(point, dict) or not all(isinstance(k, str) for k in point):
            raise ConfigError(f'{path}: get_sweep() point {i} is not a dict of dotted keys: {point!r}')
        if 'config' in point and not isinstance(point['config'], str):
            raise ConfigError(f"{path}: get_sweep() point {i}: 'config' must be an experiment file path")
    return list(points)


def point_name(point: dict) -> str:
    """A readable, filesystem-safe directory name made from a point's overrides."""
    parts = []
    if 'config' in point:
        parts.append(os.path.splitext(os.path.basename(point['config']))[0])
    for key, value in point.items():
        if key == 'config':
            continue
        text = _value_text(value)
        if key in VALUE_ONLY_KEYS:
            parts.append(text)
        else:
            label = SHORT_KEYS.get(key, key.rsplit('.', 1)[-1])
            parts.append(label + text if re.match(r'[-0-9(]', text) else f'{label}_{text}')
    name = re.sub(r'[^A-Za-z0-9._+-]+', '_', '-'.join(parts)).strip('._-') or 'base'
    if len(name) > MAX_NAME:
        name = f'{name[:MAX_NAME - 9]}-{_digest(point)}'
    return name


def _value_text(value) -> str:
    if isinstance(value, (tuple, list)):
        return '_'.join(_value_text(v) for v in value)
    return str(value)


def _digest(point: dict) -> str:
    return hashlib.sha1(json.dumps(point, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _resolve(path: str, grid_path: str) -> str:
    """An experiment file named by a point: absolute, or relative to the current directory, to the
    grid file's directory, or to the directory above it (the repository root, for a grid file in
    experiments/)."""
    here = os.path.dirname(os.path.abspath(grid_path))
    for candidate in (path, os.path.join(here, path), os.path.join(os.path.dirname(here), path)):
        if os.path.isfile(candidate):
            return candidate
    raise ConfigError(f"{grid_path}: point names config {path!r}, which is not a file (paths are "
                      'relative to the repository root)')


def build_points(grid_path: str, cli_overrides: Sequence[tuple[str, str]] = (),
                 only: str | None = None) -> list[Point]:
    """The config of every point (those ``--only`` selects) with its overrides and the command line's,
    each fully checked (the points not selected are loaded, not checked against the run's length)."""
    from cnnzoo.run.validation import check_config

    raw = load_grid(grid_path)
    shadowed = sorted({k for k, _ in cli_overrides} & {k for p in raw for k in p})
    if shadowed:
        print(f'warning: the command line sets {", ".join(shadowed)}, which points of {grid_path} set too; '
              'the command line wins (directory names still show the grid\'s values)', file=sys.stderr)
    plain = [point_name(p) for p in raw]
    # Colliding names are told apart by a hash of their overrides; equal points stay equal.
    names = [f'{n[:MAX_NAME - 9]}-{_digest(p)}' if plain.count(n) > 1 else n for n, p in zip(plain, raw)]
    points = []
    for i, (name, overrides) in enumerate(zip(names, raw)):
        if names.count(name) > 1:
            raise ConfigError(f'{grid_path}: point {i} ({name}) appears twice in the grid')
        where = f'{grid_path}: point {i} ({name})'
        base = _resolve(overrides['config'], grid_path) if 'config' in overrides else grid_path
        try:
            config = load_config_file(base)
            apply_overrides(config, [(k, literal_text(k, v)) for k, v in overrides.items() if k != 'config'])
        except ConfigError as e:
            raise ConfigError(f'{where}: {e}') from None
        try:
            apply_overrides(config, cli_overrides)
        except ConfigError as e:
            raise ConfigError(f'{where}: {e}') from None
        points.append(Point(name, overrides, config))
    index = {point.name: i for i, point in enumerate(points)}
    chosen = select(points, only)
    for point in chosen:
        try:
            check_config(point.config)
        except ConfigError as e:
            raise ConfigError(f'{grid_path}: point {index[point.name]} ({point.name}): {e}') from None
    return chosen


def select(points: list[Point], only: str | None) -> list[Point]:
    """The points whose names match one of the comma-separated globs of ``--only``."""
    if not only:
        return points
    globs = [g.strip() for g in only.split(',') if g.strip()]
    chosen = [p for p in points if any(fnmatch.fnmatchcase(p.name, g) for g in globs)]
    if not chosen:
        raise ConfigError(f'--only {only!r} matches no point; the points are: {", ".join(p.name for p in points)}')
    return chosen


def make_runs(points: list[Point], workdir: str, seeds: Sequence[int] | None) -> list[Run]:
    """Every point x seed as a run (``seeds``: the command line's, else each point's own seed)."""
    runs = []
    for point in points:
        for seed in (seeds if seeds is not None else [point.config.seed]):
            config = copy.deepcopy(point.config)
            config.seed = seed
            runs.append(Run(point, seed, seed_dir(os.path.join(workdir, point.name), seed), config))
    return runs


def make_jobs(runs: list[Run], seeds: Sequence[int] | None, vmap_seeds: bool) -> list[tuple[list[Run], object, str]]:
    """What trains, in order: ``(runs, config, directory)``; one run each, or with ``vmap_seeds`` each
    point's seeds as one program (``training.num_seeds``) in the point's directory, whose ``seed<N>/``
    replicas are the runs' directories."""
    if not vmap_seeds:
        return [([run], run.config, run.directory) for run in runs]
    if seeds is None or list(seeds) != list(range(seeds[0], seeds[0] + len(seeds))):
        raise ConfigError('--vmap-seeds trains seeds s, s+1, ..., s+K-1 in one program: give them with --seeds, '
                          f'consecutive and increasing (got {",".join(map(str, seeds)) if seeds else "none"})')
    jobs = []
    for start in range(0, len(runs), len(seeds)):
        group = runs[start:start + len(seeds)]
        config = copy.deepcopy(group[0].config)
        config.training.num_seeds = len(group)
        jobs.append((group, config, os.path.dirname(group[0].directory)))
    return jobs


def parse_seeds(text: str | None) -> list[int] | None:
    """``--seeds 0,1,2`` as a list (None when not given); a bad list is a one-line ConfigError."""
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(',') if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f'--seeds must be distinct non-negative integers separated by commas, got {text!r}')
    return seeds


# ---------------------------------------------------------------------------------------------
# The manifest


class Manifest:
    """``workdir/sweep.json``, read and rewritten atomically under ``workdir/.sweep.lock``."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, MANIFEST)
        self._lock_path = os.path.join(workdir, '.sweep.lock')

    def read(self) -> dict:
        """The manifest as it is on disk (empty when there is none yet, or it is unreadable)."""
        try:
            with open(self.path) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def update(self, change) -> None:
        """Calls ``change(manifest_dict)`` on the current manifest and writes the result."""
        with locked(self._lock_path):
            data = self.read()
            data.setdefault('runs', {})
            change(data)
            data['updated'] = _now()
            atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True, default=list) + '\n')

    def set_run(self, run: Run, **fields) -> None:
        """Sets ``fields`` of ``run``'s entry (made when missing)."""
        def change(data):
            entry = data['runs'].setdefault(run.key, {'point': run.point.name, 'seed': run.seed})
            entry.update(fields)

        self.update(change)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')


def run_state(run: Run, manifest: dict) -> str:
    """``done``, ``running``, ``interrupted``, ``failed``, ``pending`` or ``differs``, from the run
    directory first."""
    files = read_run(run.directory) if os.path.isdir(run.directory) else None
    if files is not None and files.steps_done > 0 and not files.is_run_of(run.config):
        return 'differs'  # the directory holds a run of another config: the loop will refuse it
    if files is not None and files.finished:
        return 'done'
    if os.path.isdir(run.directory) and is_locked(run.directory):
        return 'running'
    recorded = manifest.get('runs', {}).get(run.key, {}).get('state')
    if recorded == 'failed':
        return 'failed'
    if files is not None and files.steps_done > 0:
        return 'interrupted'
    return 'pending'


# ---------------------------------------------------------------------------------------------
# Running


def run_sweep(grid_path: str, workdir: str, *, seeds: Sequence[int] | None = None, only: str | None = None,
              overrides: Sequence[tuple[str, str]] = (), list_only: bool = False,
              command: Sequence[str] | None = None, out=None, vmap_seeds: bool = False) -> int:
    """Runs (or, with ``list_only``, lists) the sweep; returns the exit status (see the module docstring)."""
    out = out or sys.stdout
    points = build_points(grid_path, overrides, only)
    runs = make_runs(points, workdir, seeds)
    jobs = make_jobs(runs, seeds, vmap_seeds)
    manifest = Manifest(workdir)
    if list_only:
        _print_list(runs, manifest.read() if os.path.isdir(workdir) else {}, out)
        return 0

    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError(f'--workdir {workdir} is a file, not a directory')
    for config in _distinct_data(job[1] for job in jobs):
        check_data_found(config)
    # Imports JAX's training stack: after the grid is known good.
    from cnnzoo.run.loop import train_and_evaluate

    created = missing_parents(workdir)
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as e:  # a parent is a file
        raise ConfigError(f'--workdir {workdir}: {e.strerror} ({e.filename or workdir})') from None
    current = manifest.read()

    def start(data):
        data.update(config=grid_path, command=list(command or []), overrides=[list(o) for o in overrides],
                    seeds=list(seeds) if seeds is not None else None,
                    points=_merge_points(data.get('points', []), points))
        for run in runs:
            entry = data['runs'].setdefault(run.key, {'point': run.point.name, 'seed': run.seed})
            entry['state'] = run_state(run, current)

    manifest.update(start)
    failed = refused = 0  # refused: runs whose start found bad input (a config or data error)
    with StopSignals() as signals:  # the runs share it: a stop ends the current run and the sweep
        for i, (job_runs, config, directory) in enumerate(jobs, 1):
            if signals.received:
                break
            first = job_runs[0]
            label = (f'[{i}/{len(jobs)}] {first.point.name} seed {first.seed}'
                     + (f'..{job_runs[-1].seed} in one program' if len(job_runs) > 1 else ''))
            states = [run_state(run, manifest.read()) for run in job_runs]
            if all(state == 'done' for state in states):
                print(f'{label}: done, skipped', file=out, flush=True)
                for run in job_runs:
                    manifest.set_run(run, state='done', error=None)
                continue
            if 'running' in states or (len(job_runs) > 1 and is_locked(directory)):
                print(f'{label}: running in another process, skipped', file=out, flush=True)
                continue
            print(label, file=out, flush=True)
            for run in job_runs:
                manifest.set_run(run, state='running', error=None, started=_now(),
                                 directory=os.path.relpath(run.directory, workdir))
            started = time.perf_counter()
            try:
                summary = train_and_evaluate(config, directory)
            except (RunError, ConfigError, DataError) as e:
                failed += len(job_runs)
                refused += len(job_runs) * (not isinstance(e, RunError))
                for run in job_runs:
                    manifest.set_run(run, state='failed', error=first_line(e), finished=_now())
                print(f'{label}: failed after {_seconds(time.perf_counter() - started)}: {first_line(e)}',
                      file=out, flush=True)
                continue
            print(f'{label}: {"stopped" if summary["stopped_by"] else "done"} at step {summary["step"]}/'
                  f'{summary["total_steps"]} in {_seconds(time.perf_counter() - started)}', file=out, flush=True)
            for run, final in zip(job_runs, [r['final'] for r in summary['replicas']], strict=True):
                entry = manifest.read().get('runs', {}).get(run.key, {})
                wall = entry.get('wall_seconds', 0.0) + summary['wall_seconds']
                if summary['stopped_by']:
                    manifest.set_run(run, state='interrupted', error=f'stopped by {summary["stopped_by"]}',
                                     wall_seconds=wall, step=summary['step'])
                else:
                    manifest.set_run(run, state='done', error=None, finished=_now(), wall_seconds=wall,
                                     step=summary['step'], total_steps=summary['total_steps'],
                                     final_accuracy=(final or {}).get('accuracy'))
            if summary['stopped_by']:
                break
    done = sum(run_state(r, manifest.read()) == 'done' for r in runs)
    if created and refused == len(runs) and not _holds_runs(workdir):
        # Every run was refused at its start: nothing ran, so nothing stays, the directories the
        # sweep made included (each run's own start has already undone what it wrote; a sweep
        # process sharing the directory would have left a run's config.json, and keeps it).
        shutil.rmtree(created[-1], ignore_errors=True)
        print(f'sweep {workdir}: every run was refused at its start; nothing was written', file=out, flush=True)
        return 2
    print(f'sweep {workdir}: {done}/{len(runs)} runs done, {failed} failed'
          + (f', stopped by {signals.received}' if signals.received else '')
          + f'; report: cnnzoo report {workdir}', file=out, flush=True)
    if signals.received:
        return 128 + signal.Signals[signals.received].value
    return 1 if failed else 0


def _holds_runs(workdir: str) -> bool:
    """Whether any run directory (one with a ``config.json``) is under ``workdir``."""
    return any('config.json' in files for _, _, files in os.walk(workdir))


def _seconds(seconds: float) -> str:
    return f'{seconds:.0f} s' if seconds < 120 else f'{seconds / 60:.1f} min'


def _distinct_data(configs) -> list:
    """One config for each distinct ``data`` section among ``configs``, in order."""
    seen, kept = set(), []
    for config in configs:
        key = json.dumps(config.data.to_dict(), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            kept.append(config)
    return kept


def check_data_found(config) -> None:
    """Refuses (one-line DataError) a config whose data is not there, before anything is written:
    :func:`cnnzoo.data.resolver.check_found` (CIFAR is searched as a run searches it, an image folder
    must exist; the rest, tfds by name, is found by the run itself)."""
    from cnnzoo.data.resolver import check_found

    check_found(config.data)


def _merge_points(recorded: list, points: list[Point]) -> list:
    """The grid in the manifest: points run before (say, with another --only) stay listed."""
    by_name = {p['name']: p for p in recorded}
    for p in points:
        by_name[p.name] = {'name': p.name, 'overrides': p.overrides}
    return list(by_name.values())


def _print_list(runs: list[Run], manifest: dict, out) -> None:
    width = max(len(r.key) for r in runs)
    for run in runs:
        overrides = ', '.join(f'{k}={v!r}' for k, v in run.point.overrides.items()) or '(the file\'s own config)'
        print(f'{run.key:<{width}}  {run_state(run, manifest):<11}  {overrides}', file=out)
    points = len({r.point.name for r in runs})
    print(f'{len(runs)} runs ({points} points x seeds); nothing was run', file=out)
