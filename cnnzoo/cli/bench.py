"""The comparison commands: ``cnnzoo compare-pytorch`` (speed) and ``cnnzoo compare-accuracy``."""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Sequence

from cnnzoo.cli.common import run_cli, split_flags, wants_help
from cnnzoo.config import apply_overrides, load_config_file
from cnnzoo.errors import ConfigError

USAGE_COMPARE_PYTORCH = """\
usage: cnnzoo compare-pytorch [--models LIST] [--variants LIST] [--batch-size N] [--steps N] [--warmup N]
                              [--rounds N] [--image-size N] [--out PREFIX]
       (python scripts/compare_pytorch.py takes the same arguments)

Training and evaluation speed of cnnzoo models in JAX and PyTorch, side by side in one process.
Prints a Markdown table and writes <out>.json (device, CPU flags, versions, command, load, flags,
every figure) and <out>.md. It says what it does per variant as it goes, with the time to expect
(torch.compile's first step takes about 100 s on a 2-core CPU). bfloat16 rows on a CPU without
AVX512-BF16 or AMX are marked: they measure an emulation. What is measured and how: the docstring
of cnnzoo/bench/speed.py.

  --models LIST      comma-separated registry names, run as their CIFAR adaptation (default {models})
  --variants LIST    comma-separated, from {all_variants}
                     (default {variants})
  --batch-size N     images per step (default 128)
  --steps N          timed train (and eval) steps per variant (default 20)
  --warmup N         untimed steps first; the first compiles (default 3)
  --rounds N         the timed steps run interleaved in this many rounds (default 5)
  --image-size N     square images of this side (default 32); 64 or more runs the ImageNet form
  --out PREFIX       where <PREFIX>.json and .md go (default results/<backend>/compare_pytorch_<time>)

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


def _positive_int(flags: dict, name: str, default: int, *, minimum: int = 1) -> int:
    text = flags.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ConfigError(f'--{name} takes a whole number >= {minimum}, got {text!r} (cnnzoo compare-pytorch --help)')
    return value


def compare_pytorch_main(argv: Sequence[str]) -> int:
    """``cnnzoo compare-pytorch``: flags (``split_flags``), then :func:`cnnzoo.bench.speed.compare`."""

    def main():
        from cnnzoo.bench.names import DEFAULT_MODELS, DEFAULT_VARIANTS, JAX_VARIANT_NAMES, TORCH_VARIANTS

        if wants_help(argv):
            print(USAGE_COMPARE_PYTORCH.format(models=','.join(DEFAULT_MODELS), variants=','.join(DEFAULT_VARIANTS),
                                               all_variants=','.join((*JAX_VARIANT_NAMES, *TORCH_VARIANTS))))
            return 0
        flags, overrides = split_flags(argv, {'models', 'variants', 'batch-size', 'steps', 'warmup', 'rounds',
                                              'image-size', 'out'})
        if overrides:
            raise ConfigError(f'compare-pytorch takes no --config.KEY=VALUE (got --config.{overrides[0][0]}); '
                              'its flags: cnnzoo compare-pytorch --help')
        models = [m for m in flags.get('models', ','.join(DEFAULT_MODELS)).split(',') if m]
        variants = [v for v in flags.get('variants', ','.join(DEFAULT_VARIANTS)).split(',') if v]
        for name, items in (('models', models), ('variants', variants)):
            if not items:
                raise ConfigError(f'--{name} needs at least one name')
        unknown = [v for v in variants if v not in JAX_VARIANT_NAMES and v not in TORCH_VARIANTS]
        if unknown:
            raise ConfigError(f'--variants: unknown variant {", ".join(map(repr, unknown))}; '
                              f'choose from {", ".join((*JAX_VARIANT_NAMES, *TORCH_VARIANTS))}')
        kwargs = dict(batch_size=_positive_int(flags, 'batch-size', 128), steps=_positive_int(flags, 'steps', 20),
                      warmup=_positive_int(flags, 'warmup', 3), rounds=_positive_int(flags, 'rounds', 5),
                      image_size=_positive_int(flags, 'image-size', 32, minimum=8))
        from cnnzoo.bench.speed import compare
        from cnnzoo.models import create_model

        for name in models:  # an unknown model is bad input, named with its flag, before anything runs
            try:
                create_model(name, num_classes=10)
            except ValueError as e:
                raise ConfigError(f'--models: {e}') from e
        try:
            compare(models, variants, out=flags.get('out'), **kwargs)
        except ValueError as e:
            raise ConfigError(str(e)) from e

    return run_cli(main)


def compare_accuracy_main(argv: Sequence[str]) -> int:
    """``cnnzoo compare-accuracy``: one config trained in JAX and in PyTorch from the same start
    (:func:`cnnzoo.bench.accuracy.compare_accuracy`); returns the exit status."""
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
