"""The comparison commands: ``cnnzoo compare-pytorch`` (speed) and ``cnnzoo compare-accuracy``."""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Sequence

from cnnzoo.cli.common import Parser, at_least, names, process_hooks, run_cli
from cnnzoo.config import apply_overrides, load_config_file
from cnnzoo.errors import ConfigError

COMPARE_PYTORCH = """\
Training and evaluation speed of cnnzoo models in JAX and PyTorch, side by side in one process.
Prints a Markdown table and writes <out>.json (device, CPU flags, versions, command, load, flags,
every figure) and <out>.md. It says what it does per variant as it goes, with the time to expect
(torch.compile's first step takes about 100 s on a 2-core CPU). bfloat16 rows on a CPU without
AVX512-BF16 or AMX are marked: they measure an emulation. What is measured and how: the docstring
of cnnzoo/bench/speed.py."""

COMPARE_PYTORCH_EXAMPLES = """\
examples:
  cnnzoo compare-pytorch --models resnet20 --batch-size 128 --steps 20 --out results/cpu/r20
  cnnzoo compare-pytorch --variants jax-bf16,torch-eager-bf16-cl --batch-size 512   # a GPU"""

COMPARE_ACCURACY = """\
Trains one config with cnnzoo's loop (JAX) and its PyTorch twin from the same initial weights, with
the same batches, augmentation draws, optimizer and schedule, and writes accuracy and wall time side
by side. What is kept equal: cnnzoo/torch/recipe.py; how it is timed: cnnzoo/bench/accuracy.py."""

COMPARE_ACCURACY_EXAMPLE = """\
example:
  cnnzoo compare-accuracy --config experiments/resnet20_cifar10.py --config.training.num_epochs=3 \\
      --config.model.bn_running_var=unbiased --out results/cpu/accuracy_resnet20_3epochs"""


def compare_pytorch_parser() -> Parser:
    from cnnzoo.bench.names import (
        DEFAULT_MODELS,
        DEFAULT_VARIANTS,
        JAX_VARIANT_NAMES,
        TORCH_VARIANTS,
    )

    parser = Parser('compare-pytorch', description=COMPARE_PYTORCH, epilog=COMPARE_PYTORCH_EXAMPLES,
                    script='compare_pytorch.py')
    parser.add_argument('--models', metavar='LIST', type=names, default=list(DEFAULT_MODELS),
                        help='comma-separated registry names, run as their CIFAR adaptation '
                             f'(default {", ".join(DEFAULT_MODELS)})')
    parser.add_argument('--variants', metavar='LIST', type=names, default=list(DEFAULT_VARIANTS),
                        help=f'comma-separated, from {", ".join((*JAX_VARIANT_NAMES, *TORCH_VARIANTS))} '
                             f'(default {", ".join(DEFAULT_VARIANTS)})')
    parser.add_argument('--batch-size', metavar='N', type=at_least(1), default=128,
                        help='images per step (default %(default)s)')
    parser.add_argument('--steps', metavar='N', type=at_least(1), default=20,
                        help='timed train (and eval) steps per variant (default %(default)s)')
    parser.add_argument('--warmup', metavar='N', type=at_least(1), default=3,
                        help='untimed steps first; the first compiles (default %(default)s)')
    parser.add_argument('--rounds', metavar='N', type=at_least(1), default=5,
                        help='the timed steps run interleaved in this many rounds (default %(default)s)')
    parser.add_argument('--image-size', metavar='N', type=at_least(8), default=32,
                        help='square images of this side (default %(default)s); 64 or more runs the ImageNet form')
    parser.add_argument('--out', metavar='PREFIX',
                        help='where <PREFIX>.json and .md go (default results/<backend>/compare_pytorch_<time>)')
    return parser


def compare_pytorch_main(argv: Sequence[str]) -> int:
    """``cnnzoo compare-pytorch``: flags, then :func:`cnnzoo.bench.speed.compare`."""

    def main():
        from cnnzoo.bench.names import JAX_VARIANT_NAMES, TORCH_VARIANTS

        args = compare_pytorch_parser().parse(argv)
        for name in ('models', 'variants'):
            if not getattr(args, name):
                raise ConfigError(f'--{name} needs at least one name')
        unknown = [v for v in args.variants if v not in JAX_VARIANT_NAMES and v not in TORCH_VARIANTS]
        if unknown:
            raise ConfigError(f'--variants: unknown variant {", ".join(map(repr, unknown))}; '
                              f'choose from {", ".join((*JAX_VARIANT_NAMES, *TORCH_VARIANTS))}')
        from cnnzoo.bench.speed import compare
        from cnnzoo.models import create_model

        for name in args.models:  # an unknown model is bad input, named with its flag, before anything runs
            try:
                create_model(name, num_classes=10)
            except ValueError as e:
                raise ConfigError(f'--models: {e}') from e
        try:
            compare(args.models, args.variants, out=args.out, batch_size=args.batch_size, steps=args.steps,
                    warmup=args.warmup, rounds=args.rounds, image_size=args.image_size)
        except ValueError as e:
            raise ConfigError(str(e)) from e

    return run_cli(main)


def compare_accuracy_parser() -> Parser:
    parser = Parser('compare-accuracy', description=COMPARE_ACCURACY, epilog=COMPARE_ACCURACY_EXAMPLE,
                    script='compare_accuracy.py')
    parser.add_argument('--config', metavar='FILE', required=True, help='an experiment file')
    parser.add_argument('--out', metavar='PREFIX',
                        help='where <PREFIX>.json and .md go (default results/<backend>/accuracy_<model>_<time>)')
    parser.add_argument('--workdir', metavar='DIR',
                        help="the JAX run's directory, must be fresh (default runs/accuracy_<model>_<time>)")
    parser.add_argument('--frameworks', metavar='LIST', type=names, default=['jax', 'torch'],
                        help='comma-separated, from jax,torch (default both)')
    parser.add_overrides('any config key (cnnzoo train --help lists them)')
    return parser


def compare_accuracy_main(argv: Sequence[str]) -> int:
    """``cnnzoo compare-accuracy``: one config trained in JAX and in PyTorch from the same start
    (:func:`cnnzoo.bench.accuracy.compare_accuracy`); returns the exit status."""
    def main():
        args = compare_accuracy_parser().parse(argv)
        config = apply_overrides(load_config_file(args.config), args.overrides)

        import jax

        from cnnzoo.bench.accuracy import FRAMEWORKS, compare_accuracy, markdown, write

        if not args.frameworks or any(f not in FRAMEWORKS for f in args.frameworks):
            raise ConfigError(f'--frameworks takes a comma-separated list from {",".join(FRAMEWORKS)}')
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
        name = f'accuracy_{config.model.name}_{stamp}'
        out = args.out or os.path.join('results', jax.default_backend(), name)
        workdir = args.workdir or os.path.join('runs', name)
        process_hooks()
        try:
            report = compare_accuracy(config, workdir=workdir, frameworks=args.frameworks)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        paths = write(report, out)
        print(markdown(report))
        print(f'\nwritten: {", ".join(paths)}', file=sys.stderr)

    return run_cli(main)
