"""The data commands of the console: ``cnnzoo cifar-to-folder`` and ``cnnzoo input-benchmark``."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from cnnzoo.cli.common import run_cli, split_flags, split_switches, wants_help
from cnnzoo.config import ConfigError

USAGE_CIFAR_TO_FOLDER = """\
usage: cnnzoo cifar-to-folder --out DIR [--archive FILE] [--data-dir DIR] [--per-class-train N] [--per-class-val N]
                              [--name cifar10|cifar100]
       (python scripts/cifar_to_folder.py takes the same arguments)

Writes the first N images of every class of CIFAR as JPEG files in an image folder,
DIR/train/<class>/ and DIR/val/<class>/ (torchvision's ImageFolder layout): real images to try the
streaming path on (experiments/resnet18_folder.py).

  --archive FILE        cifar-10-python.tar.gz (or the binary one, or cifar-100-python.tar.gz); without
                        it, CIFAR is found exactly as a run finds it: an official archive in the data
                        directory, the copy an earlier run decoded there, data tensorflow-datasets
                        prepared there, or the official archive fetched there (README, "Data")
  --data-dir DIR        the data directory (default: $CNNZOO_DATA_DIR, else ~/.cache/cnnzoo), as a
                        run's --config.data.data_dir
  --out DIR             the folder to write
  --per-class-train N   training images a class (default 100), from the training set
  --per-class-val N     validation images a class (default 20), from the test set
  --name NAME           cifar10 (default) or cifar100

example:
  cnnzoo cifar-to-folder --archive ~/Downloads/cifar-10-python.tar.gz --out runs/cifar_folder
"""


def _int(flags: dict, name: str, default: int) -> int:
    text = flags.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f'--{name} {text!r}: expected a positive whole number')
    return int(text)


def cifar_to_folder_main(argv: Sequence[str]) -> int:
    """``cnnzoo cifar-to-folder``: CIFAR, found as a run finds it, written as a torchvision image
    folder (train/ and val/, one directory per class); returns the exit status."""
    def main():
        if wants_help(argv):
            print(USAGE_CIFAR_TO_FOLDER)
            return 0
        flags, overrides = split_flags(argv, {'archive', 'out', 'per-class-train', 'per-class-val', 'name',
                                              'data-dir'})
        if overrides:
            raise ConfigError('cifar-to-folder takes no --config.KEY=VALUE')
        if 'out' not in flags:
            raise ConfigError('--out is required (cnnzoo cifar-to-folder --help)')
        if os.path.exists(flags['out']) and not os.path.isdir(flags['out']):
            raise ConfigError(f'--out {flags["out"]} is a file, not a directory')
        from cnnzoo.data.sources import cifar_to_folder

        name = flags.get('name', 'cifar10')
        if name not in ('cifar10', 'cifar100'):
            raise ConfigError(f'--name {name!r}: choose cifar10 or cifar100')
        data_dir = os.path.expanduser(flags['data-dir']) if 'data-dir' in flags else None
        n_train, n_val, _ = cifar_to_folder(flags.get('archive'), flags['out'], name=name, data_dir=data_dir,
                                                 per_class_train=_int(flags, 'per-class-train', 100),
                                                 per_class_val=_int(flags, 'per-class-val', 20),
                                                 announce=lambda text: print(text, file=sys.stderr, flush=True))
        print(f'wrote {n_train} training and {n_val} validation images to {flags["out"]}/train and '
              f'{flags["out"]}/val', file=sys.stderr)

    return run_cli(main)


USAGE_INPUT_BENCHMARK = """\
usage: cnnzoo input-benchmark --config EXPERIMENT.py [--workers 1,2] [--batches N] [--warmup N]
                              [--train-step] [--steps N] [--out FILE.json] [--config.KEY=VALUE ...]

The streaming path's speed alone: training batches decoded and cropped per second by 1, 2, ...
grain worker processes (images/s, and per worker: what one CPU core sustains); with --train-step,
also the experiment's train step on synthetic batches of that shape on the device, and how many
cores the input needs to keep up with it (cnnzoo.bench.input).

  --config FILE     an experiment whose data streams (data.loader=grain)
  --workers LIST    worker counts to measure, comma-separated (default 1,2)
  --batches N       batches timed per worker count (default 20)
  --warmup N        batches taken before the timing starts (default 3)
  --train-step      time the train step too
  --steps N         train steps timed (default 5)
  --out FILE        also write the figures as JSON

example:
  cnnzoo input-benchmark --config experiments/resnet50_imagenet.py --workers 1,2 --train-step \\
      --config.data.source=folder --config.data.folder=~/imagenet
"""


def input_benchmark_main(argv: Sequence[str]) -> int:
    """``cnnzoo input-benchmark``: the streamed input's images/s per worker count (and the step's, with
    ``--train-step``), :func:`cnnzoo.bench.input.run`; returns the exit status."""
    from cnnzoo.config import apply_overrides, load_config_file

    def main():
        if wants_help(argv):
            print(USAGE_INPUT_BENCHMARK)
            return 0
        switches, rest = split_switches(argv, {'train-step'})
        flags, overrides = split_flags(rest, {'config', 'workers', 'batches', 'warmup', 'steps', 'out'})
        if 'config' not in flags:
            raise ConfigError('--config is required (cnnzoo input-benchmark --help)')
        text = flags.get('workers', '1,2')
        if not all(w.isdigit() for w in text.split(',')):
            raise ConfigError(f'--workers {text!r}: expected whole numbers separated by commas, e.g. 1,2,4')
        config = apply_overrides(load_config_file(flags['config']), overrides)
        from cnnzoo.bench.input import run

        run(config, workers=[int(w) for w in text.split(',')], batches=_int(flags, 'batches', 20),
            warmup=_int(flags, 'warmup', 3), train_step='train-step' in switches, steps=_int(flags, 'steps', 5),
            out=flags.get('out'))

    return run_cli(main)
