r"""Same model and recipe trained in JAX (cnnzoo's loop) and in PyTorch (its twin): accuracy and time.

    python scripts/compare_accuracy.py --config experiments/resnet20_cifar10.py \
        --config.data.archive=/tmp/cifar-10-python.tar.gz --config.training.num_epochs=3 \
        --config.model.bn_running_var=unbiased --out results/cpu/accuracy_resnet20_3epochs

Flags: --config FILE (required), --out PREFIX (default results/<backend>/accuracy_<model>_<time>),
--workdir DIR (the JAX run's; default runs/accuracy_<model>_<time>, must be fresh),
--frameworks jax,torch, and any --config.KEY=VALUE. What is kept equal and what is not:
cnnzoo/torch/recipe.py; how it is timed: cnnzoo/torch/compare_accuracy.py.
"""
import datetime
import os
import sys

from cnnzoo.cli import run_cli, split_flags
from cnnzoo.config import ConfigError, apply_overrides, load_config_file

USAGE = 'usage: compare_accuracy.py --config EXPERIMENT.py [--out PREFIX] [--workdir DIR] [--frameworks jax,torch] [--config.KEY=VALUE ...]'


def main(argv):
    if any(a in ('-h', '--help') for a in argv):
        print(__doc__)
        sys.exit(0)
    flags, overrides = split_flags(argv, {'config', 'out', 'workdir', 'frameworks'})
    if 'config' not in flags:
        raise ConfigError(f'--config is required\n{USAGE}')
    config = apply_overrides(load_config_file(flags['config']), overrides)
    frameworks = [f for f in flags.get('frameworks', 'jax,torch').split(',') if f]

    import jax

    from cnnzoo.torch.compare_accuracy import FRAMEWORKS, compare_accuracy, markdown, write

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


if __name__ == '__main__':
    sys.exit(run_cli(lambda: main(sys.argv[1:])))
