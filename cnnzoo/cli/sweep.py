"""``cnnzoo sweep``: flags, then :func:`cnnzoo.api.sweep` (:func:`cnnzoo.studies.sweep.run_sweep`)."""

from __future__ import annotations

from collections.abc import Sequence

from cnnzoo.api import sweep
from cnnzoo.cli.common import Parser, process_hooks, run_cli
from cnnzoo.config import apply_overrides, load_config_file

DESCRIPTION = """\
Trains every point x seed of an experiment file's grid (its get_sweep(); a file without one is a
grid of one point), one ordinary run directory each: DIR/<point>/seed<N>/. Every point is checked
before anything runs, and where the data is; then one line per run as it goes: [i/N], the point,
the seed, and done, skipped (finished before, or running in another process) or failed, with its
time. Running the same command again skips finished runs and resumes interrupted ones.
DIR/sweep.json records each run's state; `cnnzoo report DIR` makes the table and figures."""

EPILOG = """\
examples:
  cnnzoo sweep --config experiments/he2016_cifar10.py --workdir runs/he2016 --only 'resnet20*,plain20*' --list
  cnnzoo sweep --config experiments/he2016_cifar10.py --workdir runs/he2016 --only 'resnet20*,plain20*' \\
      --seeds 0,1 --config.training.num_epochs=1

exit status: 0 every run done (or skipped), 1 a run failed (the others still ran), 2 bad input (a
flag, a point of the grid, missing data: nothing is written), 128+N stopped by signal N after saving
(143 SIGTERM, 130 Ctrl-C: run the same command to go on)"""


def sweep_parser() -> Parser:
    parser = Parser('sweep', description=DESCRIPTION, epilog=EPILOG, script='sweep.py')
    parser.add_argument('--config', metavar='FILE', required=True,
                        help='the experiment file (get_config(), and get_sweep() for the grid)')
    parser.add_argument('--workdir', metavar='DIR', required=True,
                        help="the sweep's directory; created when the first run starts")
    parser.add_argument('--seeds', metavar='LIST', help="seeds to train each point with, comma-separated "
                        "(default: each point's own config.seed, one run a point)")
    parser.add_argument('--only', metavar='GLOBS', help='only the points whose names match one of these '
                        'comma-separated globs (default: every point; --list shows the names)')
    parser.add_argument('--vmap-seeds', action='store_true',
                        help="train a point's seeds as one program, vmapped (needs consecutive --seeds)")
    parser.add_argument('--list', action='store_true', help='list the runs and their states (pending, done, '
                        'running, interrupted, failed, differs); nothing is run or written')
    parser.add_overrides("set a config key for every point, after the point's own overrides")
    return parser


def sweep_main(argv: Sequence[str]) -> int:
    """``cnnzoo sweep`` / ``scripts/sweep.py``: flags, then :func:`sweep`; errors are one line (``cnnzoo.cli``)."""
    command = ['scripts/sweep.py', *argv]  # as the manifest has always recorded it
    status = 0

    def main():
        nonlocal status
        args = sweep_parser().parse(argv)
        from cnnzoo.studies.sweep import parse_seeds

        # XLA reads its flags once, when JAX starts (building the grid starts it): the grid's base
        # config with the command line's overrides decides for every point (a process-wide setting).
        if apply_overrides(load_config_file(args.config), args.overrides).training.deterministic:
            from cnnzoo.run.determinism import enable_deterministic_gpu_ops

            enable_deterministic_gpu_ops()
        process_hooks()
        status = sweep(args.config, args.workdir, seeds=parse_seeds(args.seeds), only=args.only,
                       text_overrides=args.overrides, list_only=args.list, command=command,
                       vmap_seeds=args.vmap_seeds).status

    return run_cli(main) or status
