"""What every command shares: the one flag parser, the help test, and the one place where errors
become one line on stderr and an exit status (the table in :mod:`cnnzoo.cli`)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence

from cnnzoo.errors import ConfigError, DataError, RunError

HELP_FLAGS = ('-h', '--help')


def wants_help(argv: Sequence[str]) -> bool:
    """True when ``argv`` holds ``--help`` or ``-h`` anywhere (a command prints its help and runs nothing)."""
    return any(a in HELP_FLAGS for a in argv)


def split_switches(argv: Sequence[str], switches: set[str]) -> tuple[set[str], list[str]]:
    """Takes the flags without a value (``--dry-run``) out of ``argv``: ``({'dry-run'}, rest)``."""
    found = {a[2:] for a in argv if a.startswith('--') and a[2:] in switches}
    return found, [a for a in argv if not (a.startswith('--') and a[2:] in switches)]


def split_flags(argv: Sequence[str], known: set[str]) -> tuple[dict, list[tuple[str, str]]]:
    """Separates ``--flag=value`` / ``--flag value`` for ``known`` flags from ``--config.k=v`` overrides."""
    flags, overrides = {}, []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith('--'):
            raise ConfigError(f'unexpected argument {arg!r}')
        name, has_value, value = arg[2:].partition('=')
        if not has_value:
            if i + 1 >= len(args) or args[i + 1].startswith('--'):
                raise ConfigError(f'--{name} needs a value')
            value = args[i + 1]
            i += 1
        if name.startswith('config.'):
            overrides.append((name[len('config.'):], value))
        elif name in known:
            flags[name] = value
        else:
            raise ConfigError(f'unknown flag --{name} (known: {", ".join("--" + k for k in sorted(known))}, '
                              '--config.KEY=VALUE)')
        i += 1
    return flags, overrides


def run_cli(main: Callable[[], int | None]) -> int:
    """Runs ``main`` and turns the project's own errors into one line and an exit status (the table in
    :mod:`cnnzoo.cli`); ``main``'s own status when it returns one, else 0."""
    try:
        status = main()
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


def exit_status(summary: dict) -> int:
    """0 for a finished run; 128 + the signal's number for one that SIGTERM or SIGINT stopped (after
    it saved), as a shell reports a process that signal killed."""
    stopped = summary.get('stopped_by')
    return 128 + signal.Signals[stopped].value if stopped else 0


def checked(config):
    """``config``, once it passed the whole check a run makes first (:func:`cnnzoo.run.validation.check_config`)."""
    from cnnzoo.run.validation import check_config  # imports JAX: after the flags are known good

    check_config(config)
    return config
