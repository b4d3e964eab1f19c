"""CIFAR data: official archives or tensorflow-datasets, held on the device, augmented inside jit."""

from cnnzoo.data.archives import DataError, read_archive
from cnnzoo.data.augment import AUGMENT_PRESETS, augment, normalize, to_float
from cnnzoo.data.datasets import Dataset, default_data_dir, load_dataset, load_tfds, make_dataset
from cnnzoo.data.pipeline import epoch_permutation, take_batch

__all__ = ['AUGMENT_PRESETS', 'DataError', 'Dataset', 'augment', 'default_data_dir',
           'epoch_permutation', 'load_dataset', 'load_tfds', 'make_dataset', 'normalize',
           'read_archive', 'take_batch', 'to_float']
