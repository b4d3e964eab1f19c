"""``cnnzoo evaluate``: one checkpoint of a run, or a PyTorch state_dict, on the evaluation split."""

from __future__ import annotations

from collections.abc import Sequence

from cnnzoo.cli.common import run_cli, split_flags, split_switches, wants_help
from cnnzoo.config import apply_overrides, load_config_file
from cnnzoo.errors import ConfigError

USAGE_EVALUATE = """\
usage: cnnzoo evaluate --workdir DIR [--checkpoint best|latest|STEP] [--config.KEY=VALUE ...]
       cnnzoo evaluate --config EXPERIMENT.py --torch-checkpoint FILE [--no-compare] [--config.KEY=VALUE ...]
       (python scripts/evaluate.py takes the same arguments)

Test accuracy and loss of one checkpoint of a training run, with the run's own config; or the
accuracy of a PyTorch state_dict file (a torchvision checkpoint) converted to the experiment's
model, on its data's evaluation split, beside the PyTorch twin's predictions on the same files
(top-1 agreement and the largest logit difference).

  --workdir DIR        the directory of a training run
  --checkpoint WHICH   best (by eval accuracy; the default), latest, or a step number
  --config FILE        with --torch-checkpoint: the experiment whose model and data to use
  --torch-checkpoint FILE  a state_dict saved by torch.save(model.state_dict(), FILE)
  --no-compare         with --torch-checkpoint: skip the PyTorch twin's pass
  --config.KEY=VALUE   change a key of the config for this evaluation, e.g. where the data is
  -h, --help           this help

examples:
  cnnzoo evaluate --workdir runs/r20 --checkpoint latest --config.data.archive=~/cifar-10-python.tar.gz
  cnnzoo evaluate --config experiments/resnet50_imagenet.py --torch-checkpoint resnet50-11ad3fa6.pth \\
      --config.data.source=folder --config.data.folder=~/imagenet
"""


def evaluate_main(argv: Sequence[str]) -> int:
    """``cnnzoo evaluate``: a run's checkpoint (best, latest or a step) or a torchvision checkpoint on
    the test split, saying which checkpoint and why; returns the exit status."""
    def main():
        if wants_help(argv):
            print(USAGE_EVALUATE)
            return 0
        switches, rest = split_switches(argv, {'no-compare'})
        flags, overrides = split_flags(rest, {'workdir', 'checkpoint', 'config', 'torch-checkpoint'})
        if 'torch-checkpoint' in flags:
            return evaluate_torch(flags, overrides, compare='no-compare' not in switches)
        if 'workdir' not in flags:
            raise ConfigError('--workdir is required (the directory of a training run), or --config with '
                              '--torch-checkpoint')
        from cnnzoo.run.evaluate import evaluate_checkpoint

        which = flags.get('checkpoint', 'best')
        which = int(which) if which.isdigit() else which
        if which not in ('best', 'latest') and not isinstance(which, int):
            raise ConfigError(f'--checkpoint must be best, latest or a step number, got {which!r}')
        result = evaluate_checkpoint(flags['workdir'], which=which, overrides=overrides)
        print(f'{result["model"]}, checkpoint {result["checkpoint"]}: test accuracy {result["accuracy"]:.4f}, '
              f'loss {result["loss"]:.4f} on {result["count"]} images')

    return run_cli(main)


def evaluate_torch(flags: dict, overrides, *, compare: bool) -> int:
    """``cnnzoo evaluate --config X --torch-checkpoint FILE``: accuracy, and agreement with the twin."""
    if 'config' not in flags:
        raise ConfigError('--torch-checkpoint needs --config EXPERIMENT.py (the model and data to evaluate on)')
    if 'workdir' in flags or 'checkpoint' in flags:
        raise ConfigError('--torch-checkpoint evaluates a file: drop --workdir/--checkpoint')
    config = apply_overrides(load_config_file(flags['config']), overrides)
    from cnnzoo.run.evaluate import evaluate_torch_checkpoint

    r = evaluate_torch_checkpoint(config, flags['torch-checkpoint'], compare=compare)
    print(f'{r["model"]} from {r["checkpoint"]}: top-1 accuracy {r["accuracy"]:.4f}, top-5 {r["top5_accuracy"]:.4f} '
          f'on {r["count"]} images')
    if 'top1_agreement' in r:
        print(f'PyTorch twin ({r["torch_pipeline"]}): top-1 accuracy {r["torch_accuracy"]:.4f}; '
              f'top-1 agreement {100 * r["top1_agreement"]:.2f}%, max logit difference '
              f'{r["max_logit_difference"]:.2e} (relative {r["max_relative_difference"]:.2e})')
    return 0
