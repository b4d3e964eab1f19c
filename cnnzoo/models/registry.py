"""The one model registry: ``register_model``, ``create_model`` and ``list_models``.

A factory is anything that, called as ``factory(num_classes=...)``, returns a flax Module: a
Module class or a ``functools.partial`` of one (the usual case), or a function.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
import typing
from collections.abc import Callable, Sequence

import flax.linen as nn


class FieldError(ValueError):
    """A model field that does not exist or a value it does not allow; ``field`` names it."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.field = field
        self.problem = message


_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_MIN_INPUT_SIZE: dict[str, int] = {}
_CIFAR_FIELDS: dict[str, dict] = {}
_CIFAR_MIN_INPUT_SIZE: dict[str, int] = {}

# Dataclass fields every linen Module has that are wiring, not configuration.
_MODULE_INTERNALS = frozenset({'parent', 'name'})


def register_model(name: str, factory: Callable[..., nn.Module] | None = None, *,
                   min_input_size: int = 32, cifar_fields: dict | None = None,
                   cifar_min_input_size: int | None = None):
    """Registers ``factory`` under ``name``; without ``factory``, returns a decorator that does.

    Registering a name twice is a ValueError, so two models can never silently shadow each other.
    ``min_input_size`` is the smallest square image the model accepts (32 for CIFAR-usable
    models; Inception v3 needs 299 with its auxiliary head); registry-wide tests run models at it.
    ``cifar_fields`` are the field values that make the model's usual 32x32 CIFAR adaptation
    (e.g. ``{'stem': 'cifar'}`` for the ImageNet ResNets); empty for models already made for CIFAR.
    ``cifar_min_input_size`` is the smallest input of that adaptation where it differs from
    ``min_input_size`` (Inception v3's CIFAR stem: 32); by default the same.
    """
    def add(factory):
        if name in _REGISTRY:
            raise ValueError(f'model {name!r} is already registered')
        _REGISTRY[name] = factory
        _MIN_INPUT_SIZE[name] = min_input_size
        _CIFAR_FIELDS[name] = dict(cifar_fields or {})
        _CIFAR_MIN_INPUT_SIZE[name] = min_input_size if cifar_min_input_size is None else cifar_min_input_size
        return factory

    return add if factory is None else add(factory)


def natural_key(name: str) -> tuple:
    """Sort key that orders the digit runs of ``name`` as numbers: ``vgg11 < vgg13 < vgg16_bn``."""
    return tuple((0, int(part), '') if part.isdigit() else (1, 0, part)
                 for part in re.split(r'(\d+)', name) if part)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names in natural order (``resnet18`` before ``resnet101``); ``pattern`` is an
    fnmatch glob such as ``'resnet*'``."""
    names = sorted(_REGISTRY, key=natural_key)
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names


def create_model(name: str, *, num_classes: int, **fields) -> nn.Module:
    """A new, unbound module of model ``name`` with ``fields`` overriding its defaults.

    An unknown name, a field the module does not have, or a value the field does not allow
    (see :func:`check_fields`) is a one-line ValueError, raised here rather than when the model is
    first traced.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f'unknown model {name!r}; known models: {", ".join(list_models())}') from None
    module = factory(num_classes=num_classes)
    known = model_fields(module)
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise FieldError(f'model {name!r} has no field {", ".join(map(repr, unknown))}; '
                         f'valid fields: {", ".join(known)}', field=unknown[0])
    # clone() rather than factory(**fields) so a factory that is a plain function needs no
    # **kwargs plumbing, and so the field check above is the only place fields are judged.
    module = module.clone(**fields) if fields else module
    check_fields(module)
    return module


def field_types(module_or_class) -> dict[str, typing.Any]:
    """The resolved annotations of a module's configurable fields (``typing.Literal[...]`` for a
    field with a fixed set of values)."""
    cls = module_or_class if isinstance(module_or_class, type) else type(module_or_class)
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, typing.Any) for f in dataclasses.fields(cls)
            if f.init and f.name not in _MODULE_INTERNALS}


def check_fields(module: nn.Module) -> None:
    """A one-line ValueError for a field value its declaration does not allow.

    Declarations are the checks: a ``typing.Literal`` field takes one of its values; ``bool``,
    ``int``, ``float`` and ``str`` fields take values of that type (an int for a float);
    ``Sequence[int]`` takes a tuple or list of ints. Then the module's own ``check_fields()``
    runs, for what involves several fields at once.
    """
    owner = type(module).__name__
    for name, hint in field_types(module).items():
        value = getattr(module, name)
        problem = _type_problem(value, hint)
        if problem:
            error = FieldError(f'{owner} {name}={value!r}: {problem}', field=name)
            error.problem = problem
            raise error
    own = getattr(module, 'check_fields', None)
    if callable(own):
        own()


def _type_problem(value, hint) -> str | None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return None if value in args else f'choose one of {", ".join(map(str, args))}'
    if hint is bool:
        return None if isinstance(value, bool) else 'expected True or False'
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else 'expected an integer'
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else 'expected a number'
    if hint is str:
        return None if isinstance(value, str) else 'expected a string'
    if origin in (Sequence, list, tuple) and args in ((int,), (int, ...)):
        ok = isinstance(value, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool)
                                                     for v in value)
        return None if ok else 'expected a tuple of integers, e.g. (3, 3, 3)'
    return None


def model_fields(module: nn.Module) -> list[str]:
    """The configurable fields of ``module``, sorted."""
    return sorted(f.name for f in dataclasses.fields(module) if f.init and f.name not in _MODULE_INTERNALS)


def min_input_size(name: str, *, cifar: bool = False) -> int:
    """The smallest square input (pixels) model ``name`` accepts; see ``register_model``.

    With ``cifar=True``, that of its CIFAR adaptation (built with ``cifar_fields(name)``).
    """
    if name not in _REGISTRY:
        raise ValueError(f'unknown model {name!r}; known models: {", ".join(list_models())}')
    return (_CIFAR_MIN_INPUT_SIZE if cifar else _MIN_INPUT_SIZE)[name]


def cifar_fields(name: str) -> dict:
    """Field values giving model ``name``'s CIFAR (32x32) adaptation: ``create_model(name,
    num_classes=10, **cifar_fields(name))``. Empty when the registered model is already for CIFAR."""
    min_input_size(name)  # one-line error for an unknown name
    return dict(_CIFAR_FIELDS[name])
