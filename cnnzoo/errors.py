"""The project's own errors, each a one-line message, and the one helper that makes a line of any error.

The command line (:mod:`cnnzoo.cli`) turns them into exit statuses (README, "Exit statuses"):

- :class:`ConfigError` (2): a bad flag, key, value or experiment file, found before anything ran;
- :class:`DataError` (2): missing or bad data, naming the file;
- :class:`RunError` (1): a run cannot start or go on (a NaN loss, a workdir in use, a full disk).

Every layer raises them (this module imports nothing of the project), so none needs the command
line to report a failure.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad experiment file, key or value; the message is one line."""


class DataError(ValueError):
    """Bad or missing data; the message is one line and names the file."""


class RunError(RuntimeError):
    """A run cannot start or go on; the message is one line."""


def first_line(error: BaseException, *, limit: int = 200, typed: bool = False) -> str:
    """The first non-empty line of ``error``'s text (its type's name when it has none), at most
    ``limit`` characters; ``typed=True`` puts the type's name in front (``'OSError: ...'``)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip().strip('\'"')]
    text = lines[0].strip('\'"') if lines else ''
    if typed or not text:
        text = f'{type(error).__name__}: {text}' if text else type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + '...'
