"""CIFAR data: official archives or tensorflow-datasets, held on the device, augmented inside jit."""

from cnnzoo.data.archives import read_archive
from cnnzoo.data.augment import AUGMENT_MODES, AUGMENT_PRESETS, augment, expansion, normalize, to_float
from cnnzoo.data.datasets import Dataset, default_data_dir, load_dataset, load_tfds, make_dataset
from cnnzoo.data.pipeline import epoch_permutation, expand_dataset, online_preset, take_batch
from cnnzoo.errors import DataError

__all__ = ['AUGMENT_MODES', 'AUGMENT_PRESETS', 'DataError', 'Dataset', 'augment', 'default_data_dir',
           'epoch_permutation', 'expand_dataset', 'expansion', 'online_preset', 'load_dataset', 'load_tfds', 'make_dataset', 'normalize',
           'read_archive', 'take_batch', 'to_float']
