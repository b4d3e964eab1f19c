"""``cnnzoo sweep``: flags, then :func:`cnnzoo.studies.sweep.run_sweep`."""

from __future__ import annotations

from collections.abc import Sequence

from cnnzoo.cli.common import run_cli, split_flags
from cnnzoo.errors import ConfigError

USAGE = ('usage: sweep.py --config EXPERIMENT.py --workdir DIR [--seeds 0,1,2] [--only GLOB[,GLOB]] '
         '[--vmap-seeds] [--list] [--config.KEY=VALUE ...]\n'
         '  example: cnnzoo sweep --config experiments/he2016_cifar10.py --workdir runs/he2016 '
         '--only "resnet20*,plain20*" --seeds 0,1 --list')


def sweep_main(argv: Sequence[str]) -> int:
    """``scripts/sweep.py``: flags, then :func:`run_sweep`; errors are one line (``cnnzoo.cli``)."""
    if any(a in ('-h', '--help') for a in argv):
        print(USAGE)
        return 0
    command = ['scripts/sweep.py', *argv]
    list_only, vmap_seeds = '--list' in argv, '--vmap-seeds' in argv
    argv = [a for a in argv if a not in ('--list', '--vmap-seeds')]
    status = 0

    def main():
        nonlocal status
        flags, overrides = split_flags(argv, {'config', 'workdir', 'seeds', 'only'})
        for required in ('config', 'workdir'):
            if required not in flags:
                raise ConfigError(f'--{required} is required\n{USAGE}')
        from cnnzoo.studies.sweep import parse_seeds, run_sweep

        status = run_sweep(flags['config'], flags['workdir'], seeds=parse_seeds(flags.get('seeds')),
                           only=flags.get('only'), overrides=overrides, list_only=list_only,
                           command=command, vmap_seeds=vmap_seeds)

    return run_cli(main) or status
