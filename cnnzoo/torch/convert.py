"""PyTorch ``state_dict`` <-> cnnzoo variables ``{'params': ..., 'batch_stats': ...}``, both ways.

Layouts (the key map in :mod:`cnnzoo.torch.keymaps` says which layer is which):

==========================  =============================  ==================================
layer                       PyTorch                        flax
==========================  =============================  ==================================
convolution                 ``weight`` (O, I, H, W)        ``kernel`` (H, W, I, O)
linear                      ``weight`` (out, in)           ``kernel`` (in, out)
linear after a flatten      input rows in (C, H, W) order  input rows in (H, W, C) order
BatchNorm                   ``weight``, ``bias``           ``params``: ``scale``, ``bias``
                            ``running_mean/var``           ``batch_stats``: ``mean``, ``var``
                            ``num_batches_tracked``        (none: dropped; written as 0)
==========================  =============================  ==================================

Every transformation is a transpose or reshape, so conversions are lossless both ways.
``torch_to_flax`` accepts torch tensors or numpy arrays and imports nothing from torch; only
:func:`load_torch_checkpoint` (reading a ``.pth`` file) needs torch. Outputs are numpy arrays.

BatchNorm running statistics: both sides keep an exponential average with the same weight
(flax ``momentum=0.9`` is torch ``momentum=0.1``), but torch averages the *unbiased* batch
variance (``* n / (n - 1)``, n = batch x height x width) and flax 0.12 the biased one, so running
variances drift apart slightly in training; the normalisation itself uses the biased variance on
both sides. A model built with ``bn_running_var='unbiased'`` (see ``cnnzoo.models.normalization``)
averages as torch does. See ``README.md`` (PyTorch bridge).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cnnzoo.torch.keymaps import Layer, key_map, template_size

_BN_FIELDS = (('weight', 'params', 'scale'), ('bias', 'params', 'bias'),
              ('running_mean', 'batch_stats', 'mean'), ('running_var', 'batch_stats', 'var'))


class ConversionError(ValueError):
    """Keys or shapes that do not fit the model; the message is one line."""


def _names(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    more = f' (and {len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def _numpy(value) -> np.ndarray:
    if hasattr(value, 'detach'):  # a torch tensor; no torch import needed to read it
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _chw_to_hwc_rows(weight: np.ndarray, channels: int) -> np.ndarray:
    out, features = weight.shape
    if features % channels:
        raise ConversionError(f'a linear layer reading {channels}-channel maps has {features} inputs, '
                              f'not a multiple of {channels}')
    return weight.reshape(out, channels, features // channels).transpose(0, 2, 1).reshape(out, features)


def _hwc_to_chw_rows(weight: np.ndarray, channels: int) -> np.ndarray:
    out, features = weight.shape
    return weight.reshape(out, features // channels, channels).transpose(0, 2, 1).reshape(out, features)


def _from_torch(layer: Layer, arrays: dict[str, np.ndarray]) -> dict[tuple[str, str], np.ndarray]:
    """``{(collection, leaf name): array}`` of one layer from its torch arrays (keyed by short name)."""
    if layer.kind == 'bn':
        return {(col, leaf): arrays[name] for name, col, leaf in _BN_FIELDS}
    weight = arrays['weight']
    if layer.kind == 'conv':
        if weight.ndim != 4:
            raise ConversionError(f'{layer.torch}.weight has shape {weight.shape}; a convolution needs 4 dims')
        kernel = weight.transpose(2, 3, 1, 0)
    else:
        if weight.ndim != 2:
            raise ConversionError(f'{layer.torch}.weight has shape {weight.shape}; a linear layer needs 2 dims')
        if layer.chw_channels:
            weight = _chw_to_hwc_rows(weight, layer.chw_channels)
        kernel = weight.T
    out = {('params', 'kernel'): kernel}
    if layer.bias:
        out[('params', 'bias')] = arrays['bias']
    return out


def _to_torch(layer: Layer, leaves: dict[tuple[str, str], np.ndarray]) -> dict[str, np.ndarray]:
    """The torch arrays (keyed by short name) of one layer from its flax leaves."""
    if layer.kind == 'bn':
        out = {name: leaves[(col, leaf)] for name, col, leaf in _BN_FIELDS}
        out['num_batches_tracked'] = np.zeros((), np.int64)
        return out
    kernel = leaves[('params', 'kernel')]
    if layer.kind == 'conv':
        weight = kernel.transpose(3, 2, 0, 1)
    else:
        weight = kernel.T
        if layer.chw_channels:
            weight = _hwc_to_chw_rows(weight, layer.chw_channels)
    out = {'weight': weight}
    if layer.bias:
        out['bias'] = leaves[('params', 'bias')]
    return out


def _leaves(variables) -> dict[tuple[str, ...], Any]:
    """``{(collection, *module path, leaf): value}`` over the params and batch_stats collections
    (arrays, numpy's or jax's, or the ``ShapeDtypeStruct``s of a traced template)."""
    flat: dict[tuple[str, ...], Any] = {}

    def walk(node, path):
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, (*path, k))
        else:
            flat[path] = node

    for col in ('params', 'batch_stats'):
        walk(variables.get(col, {}), (col,))
    return flat


def _nest(flat: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {'params': {}, 'batch_stats': {}}
    for path, value in flat.items():
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _template(model, image_size: int):
    import jax
    import jax.numpy as jnp

    x = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), x)


def torch_to_flax(state_dict: Mapping, model, *, template=None, skip=(),
                  image_size: int | None = None) -> dict:
    """cnnzoo variables (numpy arrays) of the unbound module ``model`` from a PyTorch ``state_dict``.

    The keys must be exactly the model's (``num_batches_tracked`` may be absent), and every array
    must have the shape the model expects: ``template`` (variables or their shapes; by default
    ``model``'s own, traced at ``image_size`` pixels, which defaults to
    :func:`~cnnzoo.torch.keymaps.template_size`: 32, or 299 for the ImageNet Inception v3) says
    which. Layers in ``skip`` (a list of :class:`Layer`) are neither read nor returned, and their
    keys are allowed in ``state_dict``.
    """
    layers = key_map(model)
    skipped = {key for layer in skip for key in layer.torch_keys()}
    expected = {key for layer in layers for key in layer.torch_keys()}
    optional = {key for key in expected if key.endswith('.num_batches_tracked')}
    missing = expected - set(state_dict) - optional - skipped
    unexpected = set(state_dict) - expected - skipped
    if missing or unexpected:
        parts = ([f'missing keys: {_names(missing)}'] if missing else []) + \
                ([f'unexpected keys: {_names(unexpected)}'] if unexpected else [])
        raise ConversionError(f'state_dict does not fit {type(model).__name__}: ' + '; '.join(parts))

    template = template or _template(model, image_size or template_size(model))
    shapes = {path: tuple(v.shape) for path, v in _leaves(template).items()}
    flat = {}
    for layer in layers:
        if layer in skip:
            continue
        arrays = {key[len(layer.torch) + 1:]: _numpy(state_dict[key]) for key in layer.torch_keys()
                  if key in state_dict}
        for (col, leaf), value in _from_torch(layer, arrays).items():
            path = (col, *layer.flax, leaf)
            if path not in shapes:
                raise ConversionError(f'the model has no variable {"/".join(path)} (for {layer.torch})')
            if value.shape != shapes[path]:
                raise ConversionError(f'shape mismatch at {layer.torch}: checkpoint gives {"/".join(path)} '
                                      f'shape {value.shape}, the model has {shapes[path]}')
            flat[path] = value
    if not skip:
        unmapped = set(shapes) - set(flat)
        if unmapped:
            raise ConversionError(f'{type(model).__name__} variables with no PyTorch key: '
                                  f'{_names("/".join(p) for p in unmapped)}')
    return _nest(flat)


def flax_to_torch(variables, model) -> dict[str, np.ndarray]:
    """A PyTorch ``state_dict`` (numpy arrays, torchvision key order) of cnnzoo ``variables``.

    ``variables`` must hold exactly the model's params and batch_stats. Load it into the PyTorch
    twin with ``twin.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``.
    """
    layers = key_map(model)
    flat = _leaves(variables)
    used = set()
    out = {}
    for layer in layers:
        leaves = {}
        names = ([(col, leaf) for _, col, leaf in _BN_FIELDS] if layer.kind == 'bn' else
                 [('params', 'kernel')] + ([('params', 'bias')] if layer.bias else []))
        for col, leaf in names:
            path = (col, *layer.flax, leaf)
            if path not in flat:
                raise ConversionError(f'variables lack {"/".join(path)} (for {layer.torch}); '
                                      f'are they from a different model or fields?')
            leaves[(col, leaf)] = np.asarray(flat[path])
            used.add(path)
        for name, value in _to_torch(layer, leaves).items():
            out[f'{layer.torch}.{name}'] = np.ascontiguousarray(value)
    extra = set(flat) - used
    if extra:
        raise ConversionError(f'variables not in the {type(model).__name__} key map: '
                              f'{_names("/".join(p) for p in extra)}')
    return out


def head_layers(model) -> list[Layer]:
    """The layers that fine-tuning re-initialises (the classifier)."""
    return [layer for layer in key_map(model) if layer.head]


def init_from_state_dict(variables, state_dict: Mapping, model, *, reset_head: bool = True) -> dict:
    """``variables`` with every layer replaced by the ``state_dict``'s, except perhaps the head.

    The head (see :func:`head_layers`) keeps its values from ``variables`` (the fresh
    initialisation) when ``reset_head`` or when its shape differs (another class count); otherwise
    it is loaded too. Any other missing, unexpected or mis-shaped key is a one-line ConversionError.
    """
    heads = head_layers(model)
    shapes = {path: tuple(v.shape) for path, v in _leaves(variables).items()}
    if not reset_head:
        for layer in heads:
            arrays = {key[len(layer.torch) + 1:]: _numpy(state_dict[key]) for key in layer.torch_keys()
                      if key in state_dict}
            try:
                fits = all(shapes.get(('params', *layer.flax, leaf)) == v.shape
                           for (_, leaf), v in _from_torch(layer, arrays).items())
            except (KeyError, ConversionError):
                fits = False
            reset_head = reset_head or not fits
    loaded = _leaves(torch_to_flax(state_dict, model, template=variables, skip=heads if reset_head else ()))
    flat = dict(_leaves(variables))
    # A checkpoint saved in half precision still gives the model's own (float32) variables.
    flat.update({path: value.astype(flat[path].dtype, copy=False) for path, value in loaded.items()})
    return _nest(flat)


def load_torch_checkpoint(path: str) -> dict[str, np.ndarray]:
    """The ``state_dict`` saved in a ``.pth`` file (``torch.save(model.state_dict(), path)``), as numpy.

    Needs torch. Loads with ``weights_only=True``: torch's unpickler then builds tensors and plain
    containers only, so a file whose pickle names any other function or class (which a plain
    ``torch.load`` would call) is refused before anything of it runs. A refused, empty, cut short or
    unreadable file is one ConversionError line naming it.
    """
    import os
    import pickle

    if not os.path.isfile(path):
        raise ConversionError(f'torch checkpoint not found: {path}')
    try:
        import torch
    except ImportError:
        raise ConversionError(f"reading {path} needs PyTorch: pip install 'cnnzoo[torch]'") from None

    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:  # torch's message advises weights_only=False: not ours to give
        named = next((line.strip() for line in str(e).splitlines() if 'GLOBAL' in line), '')
        raise ConversionError(f'torch checkpoint {path} is refused, nothing of it was run: '
                              + (named or 'it is not a state_dict of tensors, or it is damaged')) from None
    except EOFError:
        raise ConversionError(f'torch checkpoint {path} is empty or cut short') from None
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line
        raise ConversionError(f'cannot read torch checkpoint {path}: {type(e).__name__}: '
                              f'{str(e).strip().splitlines()[0] if str(e).strip() else ""}') from None
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConversionError(f'{path} does not hold a state_dict (a mapping of names to tensors); '
                              'save one with torch.save(model.state_dict(), path)')
    return {k: _numpy(v) for k, v in obj.items()}
