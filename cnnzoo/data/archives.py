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

The pickled batches are read by :func:`load_batch`, which admits only what the official batches
hold (dicts, lists, bytes, strings, numbers and numpy arrays of numbers): a pickle names the
functions that rebuild its objects, and Python's own ``pickle.loads`` calls whatever it names, so
an archive from anywhere but the official site could run any code while it is read. One that names
anything else is refused, before anything it names is called.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import pickle
import tarfile
import zlib
from typing import Any

import numpy as np

from cnnzoo.errors import DataError, first_line

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


class _Refused(pickle.UnpicklingError):
    """A pickle names a function or class outside :func:`_numpy_globals`."""


class RefusedBatch(DataError):
    """A member whose pickle would call something a CIFAR batch does not need (see the module docstring)."""


def _latin1_bytes(text: str, encoding: str = 'utf-8') -> bytes:
    """What a protocol-2 pickle written by Python 3 calls for each ``bytes`` object
    (``_codecs.encode(text, 'latin1')``), limited to that encoding."""
    if encoding not in ('latin1', 'latin-1') or not isinstance(text, str):
        raise _Refused(f'it calls _codecs.encode with {encoding!r}, which a CIFAR batch does not need')
    return codecs.encode(text, encoding)


def _numpy_globals() -> dict:
    """The functions and classes a numpy array's pickle names, under numpy 1.x's module names
    (``numpy.core``, what the official archives were written with) and 2.x's (``numpy._core``):
    ``_reconstruct(ndarray, shape, dtype)`` then the array's state (protocols 2-4), or
    ``_frombuffer(buffer, dtype, shape, order)`` (protocol 5); ``dtype('u1', ...)`` for the
    element type. They build arrays of the given bytes; none calls anything else."""
    core = getattr(np, '_core', None) or np.core  # numpy >= 2.0 keeps the modules under _core
    reconstruct, frombuffer = core.multiarray._reconstruct, core.numeric._frombuffer
    table = {('numpy', 'ndarray'): np.ndarray, ('numpy', 'dtype'): np.dtype,
             ('_codecs', 'encode'): _latin1_bytes}
    for package in ('numpy.core', 'numpy._core'):
        table[(f'{package}.multiarray', '_reconstruct')] = reconstruct
        table[(f'{package}.numeric', '_frombuffer')] = frombuffer
    return table


class _BatchUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the names in :func:`_numpy_globals` (dicts, lists,
    bytes, strings and numbers need none): any other name is refused before it is looked up."""

    _allowed: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str):
        if _BatchUnpickler._allowed is None:
            _BatchUnpickler._allowed = _numpy_globals()
        allowed = _BatchUnpickler._allowed.get((module, name))
        if allowed is None:
            raise _Refused(f'it names {module}.{name}, which a CIFAR batch does not hold')
        return allowed


def load_batch(path: str, name: str, raw: bytes):
    """The object pickled in ``raw`` (member ``name`` of archive ``path``), read with
    :class:`_BatchUnpickler` (byte strings stay bytes, as the official batches expect); a one-line
    DataError for a pickle that is damaged or names anything a CIFAR batch does not hold."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding='bytes').load()
    except _Refused as e:
        raise RefusedBatch(f'{path}: {name} is refused, nothing of it was run: {first_line(e)}') from None
    except Exception as e:  # noqa: BLE001 - any other unpickling failure means a corrupt member
        raise DataError(f'{path}: {name} is not a readable pickled batch ({type(e).__name__})') from None
    return batch


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
            batch = load_batch(path, name, tar.extractfile(member).read())
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
    batch = load_batch(path, name, raw)
    key = b'labels' if num_classes == 10 else b'fine_labels'
    if not isinstance(batch, dict) or b'data' not in batch or key not in batch:
        raise DataError(f'{path}: {name} lacks data or {key.decode()}')
    try:
        data = np.asarray(batch[b'data'], np.uint8)
        labels = np.asarray(batch[key], np.int32)
    except (TypeError, ValueError, OverflowError) as e:
        raise DataError(f'{path}: {name} holds data or labels that are not numbers ({first_line(e)})') from None
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
            member = 'meta' if layout == 'cifar100-python' else 'batches.meta'
            meta = load_batch(path, member, read(member))
            key = b'fine_label_names' if layout == 'cifar100-python' else b'label_names'
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[key]]
    except RefusedBatch:  # a member that would run code is refused, not passed over
        raise
    except DataError:
        names = []
    except Exception:  # noqa: BLE001 - names are a convenience; the pixels and labels were checked
        names = []
    return names if len(names) == num_classes else [str(i) for i in range(num_classes)]
