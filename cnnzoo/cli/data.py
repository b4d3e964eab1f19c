"""The data commands of the console: ``cnnzoo cifar-to-folder`` and ``cnnzoo input-benchmark``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cnnzoo.cli.common import Parser, at_least, run_cli
from cnnzoo.config import ConfigError

CIFAR_TO_FOLDER = """\
Writes the first N images of every class of CIFAR as JPEG files in an image folder,
DIR/train/<class>/ and DIR/val/<class>/ (torchvision's ImageFolder layout): real images to try the
streaming path on (experiments/resnet18_folder.py)."""

CIFAR_TO_FOLDER_EXAMPLE = """\
example:
  cnnzoo cifar-to-folder --archive ~/Downloads/cifar-10-python.tar.gz --out runs/cifar_folder"""


def cifar_to_folder_parser() -> Parser:
    parser = Parser('cifar-to-folder', description=CIFAR_TO_FOLDER, epilog=CIFAR_TO_FOLDER_EXAMPLE,
                    script='cifar_to_folder.py')
    parser.add_argument('--out', metavar='DIR', required=True, help='the folder to write')
    parser.add_argument('--archive', metavar='FILE', help='cifar-10-python.tar.gz (or the binary one, or '
                        'cifar-100-python.tar.gz); without it, CIFAR is found exactly as a run finds it: an '
                        'official archive in the data directory, the copy an earlier run decoded there, data '
                        'tensorflow-datasets prepared there, or the official archive fetched there (README, "Data")')
    parser.add_argument('--data-dir', metavar='DIR', help="the data directory (default: $CNNZOO_DATA_DIR, else "
                        "~/.cache/cnnzoo), as a run's --config.data.data_dir")
    parser.add_argument('--per-class-train', metavar='N', type=at_least(1), default=100,
                        help='training images a class (default %(default)s), from the training set')
    parser.add_argument('--per-class-val', metavar='N', type=at_least(1), default=20,
                        help='validation images a class (default %(default)s), from the test set')
    parser.add_argument('--name', metavar='NAME', choices=('cifar10', 'cifar100'), default='cifar10',
                        help='cifar10 (default) or cifar100')
    return parser


def cifar_to_folder_main(argv: Sequence[str]) -> int:
    """``cnnzoo cifar-to-folder``: CIFAR, found as a run finds it, written as a torchvision image
    folder (train/ and val/, one directory per class); returns the exit status."""
    def main():
        args = cifar_to_folder_parser().parse(argv)
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ConfigError(f'--out {args.out} is a file, not a directory')
        from cnnzoo.data.sources import cifar_to_folder

        data_dir = os.path.expanduser(args.data_dir) if args.data_dir is not None else None
        n_train, n_val, _ = cifar_to_folder(args.archive, args.out, name=args.name, data_dir=data_dir,
                                            per_class_train=args.per_class_train, per_class_val=args.per_class_val,
                                            announce=lambda text: print(text, file=sys.stderr, flush=True))
        print(f'wrote {n_train} training and {n_val} validation images to {args.out}/train and '
              f'{args.out}/val', file=sys.stderr)

    return run_cli(main)


INPUT_BENCHMARK = """\
The streaming path's speed alone: training batches decoded and cropped per second by 1, 2, ...
grain worker processes (images/s, per worker, and per core the reading may use: what one CPU core
sustains); with --train-step, also the experiment's train step on synthetic batches of that shape
on the device, and how many cores the input needs to keep up with it (cnnzoo.bench.input)."""

INPUT_BENCHMARK_EXAMPLE = """\
example:
  cnnzoo input-benchmark --config experiments/resnet50_imagenet.py --workers 1,2 --train-step \\
      --config.data.source=folder --config.data.folder=~/imagenet"""


def worker_counts(text: str) -> list[int]:
    """``--workers 1,2,4``."""
    if not all(w.isdigit() for w in text.split(',')):
        raise argparse.ArgumentTypeError(f'{text!r}: expected whole numbers separated by commas, e.g. 1,2,4')
    return [int(w) for w in text.split(',')]


def input_benchmark_parser() -> Parser:
    parser = Parser('input-benchmark', description=INPUT_BENCHMARK, epilog=INPUT_BENCHMARK_EXAMPLE)
    parser.add_argument('--config', metavar='FILE', required=True,
                        help='an experiment whose data streams (data.loader=grain)')
    parser.add_argument('--workers', metavar='LIST', type=worker_counts, default=[1, 2],
                        help='worker counts to measure, comma-separated (default 1,2)')
    parser.add_argument('--batches', metavar='N', type=at_least(1), default=20,
                        help='batches timed per worker count (default %(default)s)')
    parser.add_argument('--warmup', metavar='N', type=at_least(1), default=3,
                        help='batches taken before the timing starts (default %(default)s)')
    parser.add_argument('--train-step', action='store_true', help='time the train step too')
    parser.add_argument('--steps', metavar='N', type=at_least(1), default=5,
                        help='train steps timed (default %(default)s)')
    parser.add_argument('--out', metavar='FILE', help='also write the figures as JSON')
    parser.add_overrides()
    return parser


def input_benchmark_main(argv: Sequence[str]) -> int:
    """``cnnzoo input-benchmark``: the streamed input's images/s per worker count (and the step's, with
    ``--train-step``), :func:`cnnzoo.bench.input.run`; returns the exit status."""
    from cnnzoo.config import apply_overrides, load_config_file

    def main():
        args = input_benchmark_parser().parse(argv)
        config = apply_overrides(load_config_file(args.config), args.overrides)
        from cnnzoo.bench.input import run

        run(config, workers=args.workers, batches=args.batches, warmup=args.warmup, train_step=args.train_step,
            steps=args.steps, out=args.out)

    return run_cli(main)
