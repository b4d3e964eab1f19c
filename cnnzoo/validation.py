"""Up-front checks of a whole config, before any data is read or anything is compiled.

``check_config(config)`` is what every entry point (train, evaluate, sweep ``--list``, the
comparison tools) calls first; it raises :class:`cnnzoo.config.ConfigError` with one line naming
the key, the bad value and what is allowed.
"""

from __future__ import annotations

from cnnzoo.config import ConfigError, validate


def check_config(config) -> None:
    """Raises a one-line ConfigError for anything in ``config`` that would fail later."""
    validate(config)


__all__ = ['ConfigError', 'check_config']
