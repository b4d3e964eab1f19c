"""Registries: every name a config may hold, kept beside the code it names.

A loss, an optimizer, a schedule, an augmentation, a compute dtype, a data source: each is a
:class:`Registry` defined in the module that implements its entries (``cnnzoo.training.losses``,
``cnnzoo.training.optimizers``, ...), and each entry is registered where it is written::

    LOSSES = Registry('loss', 'training.loss')

    @LOSSES.register('focal', params=('training.focal_gamma',))
    def focal(logits, labels, *, gamma):
        '''Focal loss (Lin et al. 2017): cross-entropy weighted by (1 - p)^gamma.'''

The schema's allowed values, the check of a config (:func:`cnnzoo.config.validate`) and the help of
``cnnzoo train --help`` all read the registries, so adding an entry is one function in one module.
A name that is not registered is one line naming the key, the value and the names there are; a
name registered twice is a programming error, raised at import.

The modules that hold registries are imported by ``cnnzoo train --help``, which must stay quick: they
import JAX and optax inside their functions, not at the top (the registry itself imports nothing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from cnnzoo.errors import ConfigError

F = TypeVar('F', bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered name: what it stands for (``value``: a function, or a plain value such as a
    dtype's name), one line of help, the config keys it reads besides its name (``params``), and
    whatever else its registry's users need to know of it (``meta``)."""

    name: str
    value: Any
    help: str
    params: tuple[str, ...] = ()
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


class Registry:
    """The names of one kind (``what``: 'loss') that one config key (``key``: 'training.loss') holds."""

    def __init__(self, what: str, key: str):
        self.what, self.key = what, key
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, value: Any, *, help: str, params: Sequence[str] = (), **meta: Any) -> Any:
        """Registers ``value`` as ``name``; returns ``value``."""
        if name in self._entries:
            raise ValueError(f'{self.what} {name!r} is registered twice')
        self._entries[name] = Entry(name, value, help, tuple(params), dict(meta))
        return value

    def register(self, name: str, *, help: str | None = None, params: Sequence[str] = (),
                 **meta: Any) -> Callable[[F], F]:
        """A decorator: registers the function as ``name``; its help is ``help`` or its docstring's
        first line."""

        def add(fn: F) -> F:
            text = help or next(iter((fn.__doc__ or '').strip().splitlines()), '')
            self.add(name, fn, help=text.strip(), params=params, **meta)
            return fn

        return add

    def get(self, name: str) -> Entry:
        """The entry of ``name``; a one-line ConfigError naming the key and the known names otherwise."""
        entry = self._entries.get(name)
        if entry is None:
            raise ConfigError(f'config.{self.key}={name!r}: choose one of {", ".join(self)}')
        return entry

    def __getitem__(self, name: str) -> Any:
        """The registered value of ``name`` (as :meth:`get` checks it)."""
        return self.get(name).value

    def names(self) -> tuple[str, ...]:
        """The registered names, in the order they were registered."""
        return tuple(self._entries)

    def entries(self) -> tuple[Entry, ...]:
        """The entries, in the order they were registered."""
        return tuple(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f'Registry({self.what!r}, {self.key!r}: {", ".join(self)})'
