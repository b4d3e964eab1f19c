"""What every command shares: its argument parser (argparse, with the ``--config.KEY=VALUE``
overrides and one-line errors), and the one place where errors become one line on stderr and an
exit status (the table in :mod:`cnnzoo.cli`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence

from cnnzoo.errors import ConfigError, DataError, RunError

HELP_FLAGS = ('-h', '--help')
OVERRIDE_PREFIX = '--config.'
WIDTH = 100  # the width of every help text, the schema's too (cnnzoo.cli.help)


class Exit(SystemExit):
    """A parser ended the command before it ran (it printed the help): :func:`run_cli` returns
    ``code`` as the exit status; elsewhere it ends the process as argparse's own exit does."""

    code: int  # always a status here (SystemExit allows a message or None)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's layout at the help's fixed width; a description and an epilog (the examples, the
    exit statuses) are printed as written, a flag's help is wrapped beside it."""

    def __init__(self, prog: str):
        super().__init__(prog, width=WIDTH, max_help_position=30)

    def _split_lines(self, text: str, width: int) -> list[str]:
        # argparse's wrapping, less its breaks at hyphens: names such as torch-eager-bf16-cl, --dry-run
        # and experiments/resnet20_cifar10.py stay whole.
        return textwrap.wrap(' '.join(text.split()), width, break_on_hyphens=False)


class _Overrides(argparse.Action):
    """Shows ``--config.KEY=VALUE ...`` in the usage and the flag list. argparse has no option that
    matches a family of names, so :meth:`Parser.parse` takes the overrides out of the arguments
    (:func:`take_overrides`) before argparse reads the rest; this action never receives one."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def format_usage(self) -> str:
        return f'{self.option_strings[0]} ...'

    def __call__(self, parser, namespace, values, option_string=None):
        raise AssertionError('--config.KEY=VALUE overrides are taken out before argparse parses')


def take_overrides(argv: Sequence[str], prog: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``([(key, value), ...], the other arguments)``: every ``--config.KEY=VALUE`` and ``--config.KEY
    VALUE`` in ``argv``, in order (a later one wins), up to a ``--``."""
    overrides, rest = [], []
    args = iter(argv)
    for arg in args:
        if arg == '--':
            rest += [arg, *args]
            break
        if not arg.startswith(OVERRIDE_PREFIX):
            rest.append(arg)
            continue
        key, has_value, value = arg[len(OVERRIDE_PREFIX):].partition('=')
        if not has_value:
            following = next(args, None)
            if following is None or following.startswith('--'):
                raise ConfigError(f'{OVERRIDE_PREFIX}{key}: expected one argument ({prog} --help)')
            value = following
        overrides.append((key, value))
    return overrides, rest


class Parser(argparse.ArgumentParser):
    """A command's argparse parser, with the house's conventions:

    - ``prog`` is ``cnnzoo COMMAND``, for ``scripts/X.py`` too (they take the same arguments);
    - :meth:`parse` returns the arguments with ``overrides``, the ``[(key, value), ...]`` of every
      ``--config.KEY=VALUE`` when the parser has :meth:`add_overrides`;
    - every error is one :class:`ConfigError` line (exit status 2 through :func:`run_cli`), never
      argparse's usage block and SystemExit; a flag's name is never abbreviated (``--work`` is not
      ``--workdir``); a repeated flag keeps its last value, as argparse's ``store`` does;
    - ``-h``/``--help`` anywhere prints the help (with ``more_help(args)`` after it, for help that
      depends on the other arguments: train's model fields) and ends the command with status 0.
    """

    def __init__(self, command: str, *, description: str, epilog: str = '', script: str | None = None,
                 help: str = 'this help', more_help: Callable[[argparse.Namespace], str] | None = None):
        if script:
            description += f'\n(python scripts/{script} takes the same arguments)'
        super().__init__(prog=f'cnnzoo {command}', description=description, epilog=epilog,
                         formatter_class=_Formatter, add_help=False, allow_abbrev=False, exit_on_error=False)
        # A switch, not argparse's help action that prints at once: the help may depend on arguments
        # that follow it (`cnnzoo train --help --config X.py`), and a required flag is no error then.
        self.add_argument(*HELP_FLAGS, action='store_true', help=help)
        self.more_help = more_help
        self.takes_overrides = False

    def add_overrides(self, help: str = 'set a config key (a Python literal, else a string); repeatable'):
        """Accept ``--config.KEY=VALUE`` (and ``--config.KEY VALUE``), listed here in the help."""
        self.add_argument(f'{OVERRIDE_PREFIX}KEY=VALUE', action=_Overrides, help=help)
        self.takes_overrides = True

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        """The arguments of ``argv``, checked; prints the help and raises :class:`Exit` for ``--help``."""
        overrides, rest = take_overrides(argv, self.prog) if self.takes_overrides else ([], list(argv))
        required = [action for action in self._actions if action.required]
        for action in required:  # checked below in our words, and not at all with --help
            action.required = False
        try:
            args, extras = self.parse_known_args(rest)
        except argparse.ArgumentError as e:
            raise ConfigError(self._message(e)) from None
        finally:
            for action in required:
                action.required = True
        args.overrides = overrides
        if args.help:
            print(self.help_text(args))
            self.exit(0)
        if extras:
            self._refuse(extras[0])
        for action in required:
            if getattr(args, action.dest) is None:
                raise ConfigError(f'{_name(action)} is required ({self.prog} --help)')
        return args

    def help_text(self, args: argparse.Namespace) -> str:
        """The generated help, then ``more_help(args)``."""
        parts = [self.format_help(), self.more_help(args) if self.more_help else '']
        return '\n\n'.join(part.rstrip() for part in parts if part)

    def _message(self, error: argparse.ArgumentError) -> str:
        """One line for argparse's error: ``--steps 'x': expected ...`` for a value a ``type=``
        function refused (its message starts with the value), ``--workdir: expected one argument``
        for argparse's own."""
        if error.argument_name is None:
            return f'{error.message} ({self.prog} --help)'
        if isinstance(error.__context__, argparse.ArgumentTypeError):
            return f'{error.argument_name} {error.message}'
        return f'{error.argument_name}: {error.message} ({self.prog} --help)'

    def _refuse(self, extra: str):
        """The one line for the first argument that no flag or positional took."""
        if extra.startswith('-') and len(extra) > 1:
            known = [s for action in self._actions for s in action.option_strings
                     if s.startswith('--') and s != '--help']
            listed = f'known: {", ".join(known)}; ' if known else ''
            raise ConfigError(f'unknown flag {extra.partition("=")[0]} ({listed}{self.prog} --help)')
        raise ConfigError(f'unexpected argument {extra!r} ({self.prog} --help)')

    def error(self, message: str):
        """argparse's other errors: one line, not the usage block and SystemExit(2)."""
        raise ConfigError(f'{message} ({self.prog} --help)')

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            print(message.rstrip(), file=sys.stderr)
        raise Exit(status)


def _name(action: argparse.Action) -> str:
    """How the help names an argument: its long flag, or a positional's METAVAR."""
    if action.option_strings:
        return action.option_strings[-1]
    return action.metavar if isinstance(action.metavar, str) and action.metavar else action.dest.upper()


# ---- value types: a refused value is ``--flag 'text': what was expected`` ------------------------

def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r}: expected a whole number') from None


def at_least(minimum: int) -> Callable[[str], int]:
    """A ``type=``: a whole number of at least ``minimum``."""
    def whole_number_at_least(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            wanted = 'a positive whole number' if minimum == 1 else f'a whole number >= {minimum}'
            raise argparse.ArgumentTypeError(f'{text!r}: expected {wanted}')
        return value

    return whole_number_at_least


def names(text: str) -> list[str]:
    """A comma-separated list (``resnet20,vgg11``), empty items dropped."""
    return [item for item in text.split(',') if item]


def run_cli(main: Callable[[], int | None]) -> int:
    """Runs ``main`` and turns the project's own errors into one line and an exit status (the table in
    :mod:`cnnzoo.cli`); ``main``'s own status when it returns one, else 0."""
    try:
        status = main()
    except Exit as e:  # the help was printed
        return e.code
    except BrokenPipeError:  # the reader went away (`cnnzoo train --help | head`): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        # An OS error that reached here (a full disk while writing metrics, a read-only directory)
        # stopped the run: its own words and the file are the one line a user needs.
        statuses = {ConfigError: 2, DataError: 2, RunError: 1, OSError: 1}
        code = next((code for kind, code in statuses.items() if isinstance(e, kind)), None)
        if code is None or os.environ.get('CNNZOO_DEBUG'):
            raise
        text = f'{e.strerror}: {e.filename}' if isinstance(e, OSError) and e.strerror and e.filename else e
        print(f'error: {text}', file=sys.stderr)
        return code
    return status if isinstance(status, int) else 0


def process_hooks() -> None:
    """What a command that trains installs for its whole process, and a library call never does: a
    failed asynchronous save is reported in one line, without the hundred lines of tracebacks orbax
    and asyncio print around it (:func:`cnnzoo.run.checkpoints.quiet_failed_saves`)."""
    from cnnzoo.run.checkpoints import quiet_failed_saves

    quiet_failed_saves()


def exit_status(stopped_by: str | None) -> int:
    """0 for a finished run; 128 + the signal's number for one that SIGTERM or SIGINT stopped (after
    it saved; ``stopped_by`` names it), as a shell reports a process that signal killed."""
    return 128 + signal.Signals[stopped_by].value if stopped_by else 0


def checked(config):
    """``config``, once it passed the whole check a run makes first (:func:`cnnzoo.run.validation.check_config`)."""
    from cnnzoo.run.validation import check_config  # imports JAX: after the flags are known good

    check_config(config)
    return config
