"""``cnnzoo config``: the resolved config of an experiment file, as JSON; runs nothing."""

from __future__ import annotations

from collections.abc import Sequence

from cnnzoo.api import get_config
from cnnzoo.cli.common import Parser, checked, run_cli
from cnnzoo.config import to_json

DESCRIPTION = """\
Prints the config an experiment file and overrides resolve to, as JSON (the schema's defaults
without a file), after the same checks a run makes first; nothing is read, trained or written.
A bad key or value is one line and exit status 2. `cnnzoo train --help` lists the keys."""

EPILOG = """\
example:
  cnnzoo config experiments/he2016_cifar10.py --config.model.name=plain56 --config.schedule.ratio=5:3:2"""


def config_parser() -> Parser:
    parser = Parser('config', description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument('experiment', metavar='EXPERIMENT.py', nargs='?',
                        help='an experiment file defining get_config() (default: the schema alone)')
    parser.add_argument('--config', metavar='FILE', help='the same, as train takes it')
    parser.add_overrides('set any key (cnnzoo train --help lists them)')
    return parser


def config_main(argv: Sequence[str]) -> int:
    """``cnnzoo config``: the resolved config of an experiment and its overrides, checked, as JSON;
    returns the exit status."""
    def main():
        args = config_parser().parse(argv)
        config = get_config(args.experiment or args.config or None, text_overrides=args.overrides)
        print(to_json(checked(config)))
        return 0

    return run_cli(main)
