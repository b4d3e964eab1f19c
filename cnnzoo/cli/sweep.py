"""``cnnzoo sweep``: flags, then :func:`cnnzoo.studies.sweep.run_sweep`."""

from __future__ import annotations

from collections.abc import Sequence

from cnnzoo.cli.common import run_cli, split_flags, split_switches, wants_help
from cnnzoo.errors import ConfigError

USAGE_SWEEP = """\
usage: cnnzoo sweep --config EXPERIMENT.py --workdir DIR [--seeds 0,1,2] [--only GLOB[,GLOB]]
                    [--vmap-seeds] [--list] [--config.KEY=VALUE ...]
       (python scripts/sweep.py takes the same arguments)

Trains every point x seed of an experiment file's grid (its get_sweep(); a file without one is a
grid of one point), one ordinary run directory each: DIR/<point>/seed<N>/. Every point is checked
before anything runs, and where the data is; then one line per run as it goes: [i/N], the point,
the seed, and done, skipped (finished before, or running in another process) or failed, with its
time. Running the same command again skips finished runs and resumes interrupted ones.
DIR/sweep.json records each run's state; `cnnzoo report DIR` makes the table and figures.

  --config FILE        the experiment file (get_config(), and get_sweep() for the grid)
  --workdir DIR        the sweep's directory; created when the first run starts
  --seeds LIST         seeds to train each point with, comma-separated (default: each point's own
                       config.seed, one run a point)
  --only GLOBS         only the points whose names match one of these comma-separated globs
                       (default: every point; --list shows the names)
  --vmap-seeds         train a point's seeds as one program, vmapped (needs consecutive --seeds)
  --list               list the runs and their states (pending, done, running, interrupted,
                       failed, differs); nothing is run or written
  --config.KEY=VALUE   set a config key for every point, after the point's own overrides
  -h, --help           this help

examples:
  cnnzoo sweep --config experiments/he2016_cifar10.py --workdir runs/he2016 --only 'resnet20*,plain20*' --list
  cnnzoo sweep --config experiments/he2016_cifar10.py --workdir runs/he2016 --only 'resnet20*,plain20*' \\
      --seeds 0,1 --config.training.num_epochs=1

exit status: 0 every run done (or skipped), 1 a run failed (the others still ran), 2 bad input (a
flag, a point of the grid, missing data: nothing is written), 128+N stopped by signal N after saving
(143 SIGTERM, 130 Ctrl-C: run the same command to go on)
"""

# What sweep_main takes: flags with a value, and switches (every one is in the help above).
FLAGS, SWITCHES = {'config', 'workdir', 'seeds', 'only'}, {'list', 'vmap-seeds'}


def sweep_main(argv: Sequence[str]) -> int:
    """``cnnzoo sweep`` / ``scripts/sweep.py``: flags, then :func:`run_sweep`; errors are one line (``cnnzoo.cli``)."""
    if wants_help(argv):
        print(USAGE_SWEEP)
        return 0
    command = ['scripts/sweep.py', *argv]  # as the manifest has always recorded it
    switches, rest = split_switches(argv, SWITCHES)
    status = 0

    def main():
        nonlocal status
        flags, overrides = split_flags(rest, FLAGS)
        for required in ('config', 'workdir'):
            if required not in flags:
                raise ConfigError(f'--{required} is required (cnnzoo sweep --help)')
        from cnnzoo.studies.sweep import parse_seeds, run_sweep

        status = run_sweep(flags['config'], flags['workdir'], seeds=parse_seeds(flags.get('seeds')),
                           only=flags.get('only'), overrides=overrides, list_only='list' in switches,
                           command=command, vmap_seeds='vmap-seeds' in switches)

    return run_cli(main) or status
