"""The comparison commands: ``cnnzoo compare-pytorch`` (speed) and ``cnnzoo compare-accuracy``."""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Sequence

from cnnzoo.cli.common import run_cli, split_flags, wants_help
from cnnzoo.config import apply_overrides, load_config_file
from cnnzoo.errors import ConfigError

DESCRIPTION_COMPARE_PYTORCH = """\
Training and evaluation speed of cnnzoo models in JAX and PyTorch, side by side in one process.
(python scripts/compare_pytorch.py takes the same arguments.) Prints a Markdown table and writes
<out>.json (device, versions, command, load, flags, every figure) and <out>.md. What is measured and
how: the docstring of cnnzoo/bench/speed.py.

examples:
  cnnzoo compare-pytorch --models resnet20 --batch-size 128 --steps 20 --out results/cpu/r20
  cnnzoo compare-pytorch --variants jax-bf16,torch-eager-bf16-cl --batch-size 512   # a GPU
"""


USAGE_COMPARE_ACCURACY = """\
usage: cnnzoo compare-accuracy --config EXPERIMENT.py [--out PREFIX] [--workdir DIR] [--frameworks jax,torch]
                               [--config.KEY=VALUE ...]
       (python scripts/compare_accuracy.py takes the same arguments)

Trains one config with cnnzoo's loop (JAX) and its PyTorch twin from the same initial weights, with
the same batches, augmentation draws, optimizer and schedule, and writes accuracy and wall time side
by side. What is kept equal: cnnzoo/torch/recipe.py; how it is timed: cnnzoo/bench/accuracy.py.

  --config FILE        an experiment file (required)
  --out PREFIX         where <PREFIX>.json and .md go (default results/<backend>/accuracy_<model>_<time>)
  --workdir DIR        the JAX run's directory, must be fresh (default runs/accuracy_<model>_<time>)
  --frameworks LIST    comma-separated, from jax,torch (default both)
  --config.KEY=VALUE   any config key (cnnzoo train --help lists them)

example:
  cnnzoo compare-accuracy --config experiments/resnet20_cifar10.py --config.training.num_epochs=3 \\
      --config.model.bn_running_var=unbiased --out results/cpu/accuracy_resnet20_3epochs
"""


def compare_pytorch_main(argv: Sequence[str]) -> int:
    import argparse

    from cnnzoo.bench.speed import DEFAULT_MODELS, DEFAULT_VARIANTS, JAX_VARIANTS, TORCH_VARIANTS, compare

    class Parser(argparse.ArgumentParser):
        def error(self, message):  # one line and status 2, as every other command
            raise ConfigError(message)

    def comma_list(text):
        return [item for item in text.split(',') if item]

    parser = Parser(prog='cnnzoo compare-pytorch', description=DESCRIPTION_COMPARE_PYTORCH, allow_abbrev=False,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', type=comma_list, default=','.join(DEFAULT_MODELS),
                        help='comma-separated registry names, run as their CIFAR adaptation (default: %(default)s)')
    parser.add_argument('--variants', type=comma_list, default=','.join(DEFAULT_VARIANTS),
                        help=f'comma-separated, from {",".join((*JAX_VARIANTS, *TORCH_VARIANTS))} '
                             '(default: %(default)s)')
    parser.add_argument('--batch-size', type=int, default=128, help='images per step (default: %(default)s)')
    parser.add_argument('--steps', type=int, default=20, help='timed train (and eval) steps per variant')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps first; the first compiles')
    parser.add_argument('--rounds', type=int, default=5, help='the timed steps run interleaved in this many rounds')
    parser.add_argument('--out', default=None,
                        help='path prefix of the .json and .md written '
                             '(default: results/<backend>/compare_pytorch_<time>)')

    def main():
        if wants_help(argv):
            print(parser.format_help())
            return 0
        args = parser.parse_args(argv)
        try:
            compare(args.models, args.variants, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                    rounds=args.rounds, out=args.out)
        except ValueError as e:
            raise ConfigError(str(e)) from e

    return run_cli(main)


def compare_accuracy_main(argv: Sequence[str]) -> int:
    def main():
        if wants_help(argv):
            print(USAGE_COMPARE_ACCURACY)
            return 0
        flags, overrides = split_flags(argv, {'config', 'out', 'workdir', 'frameworks'})
        if 'config' not in flags:
            raise ConfigError('--config is required (cnnzoo compare-accuracy --help)')
        config = apply_overrides(load_config_file(flags['config']), overrides)
        frameworks = [f for f in flags.get('frameworks', 'jax,torch').split(',') if f]

        import jax

        from cnnzoo.bench.accuracy import FRAMEWORKS, compare_accuracy, markdown, write

        if not frameworks or any(f not in FRAMEWORKS for f in frameworks):
            raise ConfigError(f'--frameworks takes a comma-separated list from {",".join(FRAMEWORKS)}')
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
        name = f'accuracy_{config.model.name}_{stamp}'
        out = flags.get('out') or os.path.join('results', jax.default_backend(), name)
        workdir = flags.get('workdir') or os.path.join('runs', name)
        try:
            report = compare_accuracy(config, workdir=workdir, frameworks=frameworks)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        paths = write(report, out)
        print(markdown(report))
        print(f'\nwritten: {", ".join(paths)}', file=sys.stderr)

    return run_cli(main)
