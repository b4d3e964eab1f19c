"""Readers for the official CIFAR archives (https://www.cs.toronto.edu/~kriz/cifar.html).

- ``cifar-10-python.tar.gz``: ``cifar-10-batches-py/data_batch_{1..5}``, ``test_batch`` and
  ``batches.meta``: pickled dicts whose ``b'data'`` rows hold 3072 bytes (1024 R, 1024 G, 1024 B,
  each plane row-major) and whose ``b'labels'`` are 0..9.
- ``cifar-10-binary.tar.gz``: ``cifar-10-batches-bin/data_batch_{1..5}.bin`` and
  ``test_batch.bin``: records of 1 label byte + the same 3072 pixel bytes; ``batches.meta.txt``.
- ``cifar-100-python.tar.gz``: ``cifar-100-python/train``, ``test``, ``meta``: pickled dicts
  with ``b'fine_labels'`` (0..99, used here) and ``b'coarse_labels'``.

Every problem found (not an archive, truncated, a member missing, a label out of range, the
wrong dataset) raises :class:`DataError` with one line naming the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import pickle
import tarfile
import zlib

import numpy as np

from cnnzoo.errors import DataError

PIXELS = 32 * 32 * 3


LAYOUTS = {
    # layout: (dataset, directory, train members, test members)
    'cifar10-python': ('cifar10', 'cifar-10-batches-py',
                       [f'data_batch_{i}' for i in range(1, 6)], ['test_batch']),
    'cifar10-binary': ('cifar10', 'cifar-10-batches-bin',
                       [f'data_batch_{i}.bin' for i in range(1, 6)], ['test_batch.bin']),
    'cifar100-python': ('cifar100', 'cifar-100-python', ['train'], ['test']),
}
NUM_CLASSES = {'cifar10': 10, 'cifar100': 100}
ARCHIVE_NAMES = {'cifar10': ('cifar-10-python.tar.gz', 'cifar-10-binary.tar.gz'),
                 'cifar100': ('cifar-100-python.tar.gz',)}


def planes_to_nhwc(rows: np.ndarray) -> np.ndarray:
    """(N, 3072) rows of R, G, B planes -> (N, 32, 32, 3) uint8."""
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


@contextlib.contextmanager
def _open_archive(path: str, dataset: str):
    """The archive's tar file, its members by name and its layout, checked to hold ``dataset``;
    whatever goes wrong while the archive is read, here or in the ``with`` body, is one DataError."""
    try:
        with tarfile.open(path, 'r:*') as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            layout = _detect_layout(path, members)
            expected, directory, _, _ = LAYOUTS[layout]
            if expected != dataset:
                raise DataError(f'{path} is a {expected} archive ({directory}/), not {dataset}')
            yield tar, members, layout
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f'archive not found: {path}') from None
    except tarfile.ReadError:
        raise DataError(f'{path} is not a readable CIFAR archive (not a tar.gz file, or cut short)') from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ''
        raise DataError(f'{path} is not a readable CIFAR archive ({type(e).__name__}: {detail}; '
                        'is the file complete?)') from None


def _member(path: str, members: dict, directory: str, name: str):
    member = members.get(f'{directory}/{name}')
    if member is None:
        raise DataError(f'{path} has no {directory}/{name}: incomplete archive')
    return member


def read_archive(path: str, dataset: str):
    """Reads an official archive of ``dataset``; returns ``(x_train, y_train, x_test, y_test, names)``.

    Images are (N, 32, 32, 3) uint8, labels int32, names a list of class names.
    """
    with _open_archive(path, dataset) as (tar, members, layout):
        _, directory, train_names, test_names = LAYOUTS[layout]

        def read(name):
            return tar.extractfile(_member(path, members, directory, name)).read()

        reader = _read_binary if layout.endswith('binary') else _read_pickled
        num_classes = NUM_CLASSES[dataset]
        train = [reader(path, name, read(name), num_classes) for name in train_names]
        test = [reader(path, name, read(name), num_classes) for name in test_names]
        names = _class_names(path, layout, read, num_classes)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    x_test = np.concatenate([x for x, _ in test])
    y_test = np.concatenate([y for _, y in test])
    return x_train, y_train, x_test, y_test, names


def count_train(path: str, dataset: str) -> int:
    """The number of training images in an official archive of ``dataset``, from its index and
    labels alone: no image is converted (a binary member's size gives its record count; a pickled
    batch is counted by its labels). Raises :class:`DataError` as :func:`read_archive` does."""
    key = b'labels' if dataset == 'cifar10' else b'fine_labels'
    total = 0
    with _open_archive(path, dataset) as (tar, members, layout):
        _, directory, train_names, _ = LAYOUTS[layout]
        for name in train_names:
            member = _member(path, members, directory, name)
            if layout.endswith('binary'):
                total += member.size // (1 + PIXELS)
                continue
            try:
                batch = pickle.loads(tar.extractfile(member).read(), encoding='bytes')
            except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt member
                raise DataError(f'{path}: {name} is not a readable pickled batch ({type(e).__name__})') from None
            if not isinstance(batch, dict) or key not in batch:
                raise DataError(f'{path}: {name} lacks {key.decode()}')
            total += len(batch[key])
    return total


def _detect_layout(path, members) -> str:
    tops = {name.split('/')[0] for name in members}
    for layout, (_, directory, _, _) in LAYOUTS.items():
        if directory in tops:
            return layout
    raise DataError(f'{path} is not an official CIFAR archive (found {", ".join(sorted(tops)) or "no files"}; '
                    f'expected one of {", ".join(d for _, d, _, _ in LAYOUTS.values())})')


def _check_labels(path, name, labels, num_classes):
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f'{path}: {name} has label {int(labels.max() if labels.max() >= num_classes else labels.min())} '
                        f'outside 0..{num_classes - 1}')


def _read_binary(path, name, raw: bytes, num_classes):
    record = 1 + PIXELS
    if len(raw) == 0 or len(raw) % record:
        raise DataError(f'{path}: {name} has {len(raw)} bytes, not a whole number of {record}-byte records')
    rows = np.frombuffer(raw, np.uint8).reshape(-1, record)
    labels = rows[:, 0].astype(np.int32)
    _check_labels(path, name, labels, num_classes)
    return planes_to_nhwc(rows[:, 1:]), labels


def _read_pickled(path, name, raw: bytes, num_classes):
    try:
        batch = pickle.loads(raw, encoding='bytes')
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt member
        raise DataError(f'{path}: {name} is not a readable pickled batch ({type(e).__name__})') from None
    key = b'labels' if num_classes == 10 else b'fine_labels'
    if not isinstance(batch, dict) or b'data' not in batch or key not in batch:
        raise DataError(f'{path}: {name} lacks data or {key.decode()}')
    data = np.asarray(batch[b'data'], np.uint8)
    labels = np.asarray(batch[key], np.int32)
    if data.ndim != 2 or data.shape[1] != PIXELS or len(data) != len(labels):
        raise DataError(f'{path}: {name} holds data of shape {data.shape} for {len(labels)} labels; '
                        f'expected (N, {PIXELS})')
    _check_labels(path, name, labels, num_classes)
    return planes_to_nhwc(data), labels


def _class_names(path, layout, read, num_classes) -> list[str]:
    try:
        if layout == 'cifar10-binary':
            names = read('batches.meta.txt').decode().split()
        else:
            meta = pickle.loads(read('meta' if layout == 'cifar100-python' else 'batches.meta'),
                                encoding='bytes')
            key = b'fine_label_names' if layout == 'cifar100-python' else b'label_names'
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[key]]
    except DataError:
        names = []
    except Exception:  # noqa: BLE001 - names are a convenience; the pixels and labels were checked
        names = []
    return names if len(names) == num_classes else [str(i) for i in range(num_classes)]
