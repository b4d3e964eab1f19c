"""Shared fixtures: tiny CIFAR-10 archives in the official python layout, made on the fly."""

import io
import pickle
import tarfile

import numpy as np
import pytest


def write_cifar10_python_archive(path, *, per_batch=40, test=50, seed=0):
    """A tiny ``cifar-10-python.tar.gz``: 5 train batches of ``per_batch`` images, ``test`` test images.

    Images are random except for a class-dependent mean colour, so a network can learn a little.
    Returns ``(x_train, y_train, x_test, y_test)`` as NHWC uint8 / int arrays.
    """
    rng = np.random.default_rng(seed)

    def images(n):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 64, (n, 32, 32, 3)) + (y[:, None, None, None] * 19)
        return x.astype(np.uint8), y

    x_train, y_train = images(5 * per_batch)
    x_test, y_test = images(test)

    def add(tar, name, obj):
        data = pickle.dumps(obj)
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    def batch(x, y):
        return {b'batch_label': b'tiny', b'labels': [int(v) for v in y],
                b'data': x.transpose(0, 3, 1, 2).reshape(len(x), 3072),
                b'filenames': [b'x.png'] * len(x)}

    with tarfile.open(path, 'w:gz') as tar:
        for i in range(5):
            s = slice(i * per_batch, (i + 1) * per_batch)
            add(tar, f'cifar-10-batches-py/data_batch_{i + 1}', batch(x_train[s], y_train[s]))
        add(tar, 'cifar-10-batches-py/test_batch', batch(x_test, y_test))
        add(tar, 'cifar-10-batches-py/batches.meta',
            {b'label_names': [f'class{i}'.encode() for i in range(10)], b'num_cases_per_batch': per_batch})
    return x_train, y_train, x_test, y_test


@pytest.fixture(scope='session')
def tiny_cifar10(tmp_path_factory):
    """Path of a tiny cifar-10-python.tar.gz (200 train, 50 test images), shared by a session."""
    path = tmp_path_factory.mktemp('tiny_cifar') / 'cifar-10-python.tar.gz'
    write_cifar10_python_archive(path)
    return str(path)
