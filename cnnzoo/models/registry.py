"""The one model registry: ``register_model``, ``create_model`` and ``list_models``.

A factory is anything that, called as ``factory(num_classes=...)``, returns a flax Module: a
Module class or a ``functools.partial`` of one (the usual case), or a function.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable

import flax.linen as nn

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


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` is an fnmatch glob such as ``'resnet*'``."""
    names = sorted(_REGISTRY)
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names


def create_model(name: str, *, num_classes: int, **fields) -> nn.Module:
    """A new, unbound module of model ``name`` with ``fields`` overriding its defaults.

    An unknown name, or a field the module does not have, is a one-line ValueError.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f'unknown model {name!r}; known models: {", ".join(list_models())}') from None
    module = factory(num_classes=num_classes)
    known = model_fields(module)
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise ValueError(f'model {name!r} has no field {", ".join(map(repr, unknown))}; '
                         f'valid fields: {", ".join(known)}')
    # clone() rather than factory(**fields) so a factory that is a plain function needs no
    # **kwargs plumbing, and so the field check above is the only place fields are judged.
    return module.clone(**fields) if fields else module


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
