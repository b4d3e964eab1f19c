r"""Command-line front ends of the scripts: flag parsing and one-line errors, nothing else.

    python scripts/train.py --config experiments/resnet20_cifar10.py --workdir runs/r20 \
        [--config.<key>=<value> ...]
    python scripts/evaluate.py --workdir runs/r20 [--checkpoint best|latest|STEP] [--config.data.archive=...]

A bad flag, key, value, file or dataset ends the program with one line on stderr
(``error: ...``) and exit status 2; a run that cannot go on (NaN loss, workdir in use) with
status 1. Set ``CNNZOO_DEBUG=1`` to see the full traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from cnnzoo.config import ConfigError, apply_overrides, load_config_file

USAGE_TRAIN = ('usage: train.py --config EXPERIMENT.py --workdir DIR [--config.KEY=VALUE ...]\n'
               '  e.g. --config experiments/resnet20_cifar10.py --workdir runs/r20 '
               '--config.training.num_epochs=1')


def split_flags(argv: Sequence[str], known: set[str]) -> tuple[dict, list[tuple[str, str]]]:
    """Separates ``--flag=value`` / ``--flag value`` for ``known`` flags from ``--config.k=v`` overrides."""
    flags, overrides = {}, []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith('--'):
            raise ConfigError(f'unexpected argument {arg!r}')
        name, has_value, value = arg[2:].partition('=')
        if not has_value:
            if i + 1 >= len(args) or args[i + 1].startswith('--'):
                raise ConfigError(f'--{name} needs a value')
            value = args[i + 1]
            i += 1
        if name.startswith('config.'):
            overrides.append((name[len('config.'):], value))
        elif name in known:
            flags[name] = value
        else:
            raise ConfigError(f'unknown flag --{name} (known: {", ".join("--" + k for k in sorted(known))}, '
                              '--config.KEY=VALUE)')
        i += 1
    return flags, overrides


def parse_train_args(argv: Sequence[str]):
    if any(a in ('-h', '--help') for a in argv):
        print(USAGE_TRAIN)
        sys.exit(0)
    flags, overrides = split_flags(argv, {'config', 'workdir'})
    for required in ('config', 'workdir'):
        if required not in flags:
            raise ConfigError(f'--{required} is required\n{USAGE_TRAIN}')
    config = load_config_file(flags['config'])
    apply_overrides(config, overrides)
    return config, flags['workdir']


def run_cli(main: Callable[[], object]) -> int:
    """Runs ``main`` and turns the project's own errors into one line and an exit status."""
    from cnnzoo.data import DataError
    from cnnzoo.workdir import RunError

    try:
        main()
    except (ConfigError, DataError) as e:
        if os.environ.get('CNNZOO_DEBUG'):
            raise
        print(f'error: {e}', file=sys.stderr)
        return 2
    except RunError as e:
        if os.environ.get('CNNZOO_DEBUG'):
            raise
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


def train_main(argv: Sequence[str]) -> int:
    def main():
        config, workdir = parse_train_args(argv)
        from cnnzoo.loop import train_and_evaluate  # imports JAX: after the flags are known good

        train_and_evaluate(config, workdir)

    return run_cli(main)


def evaluate_main(argv: Sequence[str]) -> int:
    def main():
        flags, overrides = split_flags(argv, {'workdir', 'checkpoint'})
        if 'workdir' not in flags:
            raise ConfigError('--workdir is required (the directory of a training run)')
        from cnnzoo.evaluate import evaluate_checkpoint

        which = flags.get('checkpoint', 'best')
        which = int(which) if which.isdigit() else which
        if which not in ('best', 'latest') and not isinstance(which, int):
            raise ConfigError(f'--checkpoint must be best, latest or a step number, got {which!r}')
        result = evaluate_checkpoint(flags['workdir'], which=which, overrides=overrides)
        print(f'{result["model"]} step {result["step"]} ({which}): test accuracy {result["accuracy"]:.4f}, '
              f'loss {result["loss"]:.4f} on {result["count"]} images')

    return run_cli(main)
