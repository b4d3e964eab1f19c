"""``cnnzoo models``: every registered model with its parameters and FLOPs."""

from __future__ import annotations

from collections.abc import Sequence

from cnnzoo.api import list_models
from cnnzoo.cli.common import Parser, run_cli
from cnnzoo.errors import ConfigError

DESCRIPTION = """\
Lists every registered model (or those matching the glob PATTERN) with its parameters at 10 and
1000 classes and its forward GFLOPs at 32x32 and 224x224: XLA's HLO cost analysis of one eval-mode
forward pass (a multiply-add counts 2); nothing is run."""

EPILOG = """\
example:
  cnnzoo models 'vgg*'"""


def models_parser() -> Parser:
    parser = Parser('models', description=DESCRIPTION, epilog=EPILOG, script='models.py')
    parser.add_argument('pattern', metavar='PATTERN', nargs='?', help='a glob over the names (default: every model)')
    return parser


def models_main(argv: Sequence[str]) -> int:
    """``cnnzoo models [PATTERN]``: the registry's models in natural order, a row (parameters,
    FLOPs) printed as each is measured; returns the exit status."""
    def main():
        args = models_parser().parse(argv)
        from cnnzoo.models.summary import markdown_header, markdown_row, summary_rows

        names = list_models(args.pattern)
        if not names:
            raise ConfigError(f'no model matches {args.pattern!r}; known: {", ".join(list_models())}')
        print(markdown_header(), flush=True)
        for name in names:  # row by row: each model's cost analysis takes a second or more
            print(markdown_row(summary_rows([name])[0]), flush=True)

    return run_cli(main)
