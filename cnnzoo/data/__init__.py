"""CIFAR data: official archives or tensorflow-datasets, held on the device, augmented inside jit;
the streaming path for image folders and other datasets (:mod:`cnnzoo.data.streaming`); which of
them a run reads is decided by :mod:`cnnzoo.data.resolver`.

The names below are imported from their modules on first use (PEP 562), so that importing a light
module of this package (the registries of :mod:`cnnzoo.data.resolver` and :mod:`cnnzoo.data.presets`,
read by ``cnnzoo train --help`` and by :func:`cnnzoo.config.validate`) does not start JAX.
"""

import importlib

_EXPORTS = {
    'read_archive': 'archives',
    'AUGMENTATIONS': 'presets', 'AUGMENT_MODES': 'presets',
    'augment': 'pipeline', 'expansion': 'pipeline', 'normalize': 'augmentation', 'to_float': 'augmentation',
    'Dataset': 'datasets', 'default_data_dir': 'datasets', 'load_dataset': 'datasets', 'load_tfds': 'datasets',
    'make_dataset': 'datasets',
    'epoch_permutation': 'pipeline', 'expand_dataset': 'pipeline', 'online_preset': 'pipeline',
    'take_batch': 'pipeline',
    'DataError': None,  # cnnzoo.errors'
}
__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - made from the lazy table, so the two cannot drift


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    module = _EXPORTS[name]
    value = getattr(importlib.import_module(f'{__name__}.{module}' if module else 'cnnzoo.errors'), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
