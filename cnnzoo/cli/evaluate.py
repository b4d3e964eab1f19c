"""``cnnzoo evaluate``: one checkpoint of a run, or a PyTorch state_dict, on the evaluation split."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cnnzoo import api
from cnnzoo.cli.common import Parser, run_cli
from cnnzoo.errors import ConfigError

DESCRIPTION = """\
Test accuracy and loss of one checkpoint of a training run, with the run's own config; or the
accuracy of a PyTorch state_dict file (a torchvision checkpoint) converted to the experiment's
model, on its data's evaluation split, beside the PyTorch twin's predictions on the same files
(top-1 agreement and the largest logit difference)."""

EPILOG = """\
examples:
  cnnzoo evaluate --workdir runs/r20 --checkpoint latest --config.data.archive=~/cifar-10-python.tar.gz
  cnnzoo evaluate --config experiments/resnet50_imagenet.py --torch-checkpoint resnet50-11ad3fa6.pth \\
      --config.data.source=folder --config.data.folder=~/imagenet"""


def checkpoint(text: str) -> str | int:
    """``--checkpoint``: ``'best'``, ``'latest'`` or a step number."""
    if text.isdigit():
        return int(text)
    if text not in ('best', 'latest'):
        raise argparse.ArgumentTypeError(f'must be best, latest or a step number, got {text!r}')
    return text


def evaluate_parser() -> Parser:
    parser = Parser('evaluate', description=DESCRIPTION, epilog=EPILOG, script='evaluate.py')
    run = parser.add_argument_group('a checkpoint of a training run')
    run.add_argument('--workdir', metavar='DIR', help='the directory of a training run')
    run.add_argument('--checkpoint', metavar='WHICH', type=checkpoint,
                     help='best (by eval accuracy; the default), latest, or a step number')
    torch = parser.add_argument_group('a PyTorch state_dict file')
    torch.add_argument('--torch-checkpoint', metavar='FILE',
                       help='a state_dict saved by torch.save(model.state_dict(), FILE)')
    torch.add_argument('--config', metavar='FILE', help='the experiment whose model and data to use')
    torch.add_argument('--no-compare', action='store_true', help="skip the PyTorch twin's pass")
    parser.add_overrides('change a key of the config for this evaluation, e.g. where the data is')
    return parser


def evaluate_main(argv: Sequence[str]) -> int:
    """``cnnzoo evaluate``: a run's checkpoint (best, latest or a step) or a torchvision checkpoint on
    the test split, saying which checkpoint and why; returns the exit status."""
    def main():
        args = evaluate_parser().parse(argv)
        if args.torch_checkpoint is not None:
            return evaluate_torch(args)
        if args.workdir is None:
            raise ConfigError('--workdir is required (the directory of a training run), or --config with '
                              '--torch-checkpoint')
        which = 'best' if args.checkpoint is None else args.checkpoint
        print(api.evaluate(args.workdir, which, text_overrides=args.overrides))
        return None

    return run_cli(main)


def evaluate_torch(args: argparse.Namespace) -> int:
    """``cnnzoo evaluate --config X --torch-checkpoint FILE``: accuracy, and agreement with the twin."""
    if args.config is None:
        raise ConfigError('--torch-checkpoint needs --config EXPERIMENT.py (the model and data to evaluate on)')
    if args.workdir is not None or args.checkpoint is not None:
        raise ConfigError('--torch-checkpoint evaluates a file: drop --workdir/--checkpoint')
    config = api.get_config(args.config, text_overrides=args.overrides)
    r = api.evaluate_torch(config, args.torch_checkpoint, compare=not args.no_compare)
    print(f'{r["model"]} from {r["checkpoint"]}: top-1 accuracy {r["accuracy"]:.4f}, top-5 {r["top5_accuracy"]:.4f} '
          f'on {r["count"]} images')
    if 'top1_agreement' in r:
        print(f'PyTorch twin ({r["torch_pipeline"]}): top-1 accuracy {r["torch_accuracy"]:.4f}; '
              f'top-1 agreement {100 * r["top1_agreement"]:.2f}%, max logit difference '
              f'{r["max_logit_difference"]:.2e} (relative {r["max_relative_difference"]:.2e})')
    return 0
