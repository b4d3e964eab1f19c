"""CIFAR-10 and CIFAR-100 as in-memory uint8 arrays, from the official archive or tensorflow-datasets.

Sources (``load_dataset(source=...)``):

- ``'archive'``: the official archive: the one at ``archive``, else an official file name found in
  ``data_dir``, else the copy an earlier run decoded there (its archive since moved or deleted),
  else the official python archive fetched into ``data_dir`` from the CIFAR page's server or the
  mirror in ``$CNNZOO_CIFAR_MIRROR`` (:mod:`cnnzoo.data.download`: size and MD5 checked, kept only
  whole). An archive is decoded once, then cached as ``<data_dir>/cnnzoo-cache/<dataset>-<key>.npz``
  (key: the archive's path, size and modification time), so a second run starts in about a second.
- ``'tfds'``: the data tensorflow-datasets prepared in ``data_dir`` (ArrayRecord, read by
  ``tfds.data_source`` without TensorFlow: :mod:`cnnzoo.data.tfds_data`); not prepared, it is
  prepared by tfds' builder, which needs TensorFlow (``pip install 'cnnzoo[tfds]'``) and the network.
- ``'auto'``: ``'archive'``'s search, except that data tfds has prepared in ``data_dir`` comes
  before a download; with nothing found and the server out of reach, a one-line
  :class:`DataError` saying where to put the archive.

:func:`find_cifar` is that search, the one every reader of CIFAR goes through (a run, and
``cnnzoo cifar-to-folder``): it says where the data is without reading it (or fetching it);
:func:`load_dataset` reads what it found.

The default data directory is ``$CNNZOO_DATA_DIR`` or ``~/.cache/cnnzoo``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os

import numpy as np

from cnnzoo.data import download
from cnnzoo.data.archives import ARCHIVE_NAMES, NUM_CLASSES, count_train, read_archive
from cnnzoo.errors import DataError

DOWNLOAD_PAGE = 'https://www.cs.toronto.edu/~kriz/cifar.html'
TFDS_NAMES = {'cifar10': 'cifar10', 'cifar100': 'cifar100'}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Training images and the held-out split evaluated during training, as numpy arrays.

    ``test_*`` is the official test set, or the validation split when ``eval_split ==
    'validation'``. ``mean``/``std`` are per-channel statistics of the training images in [0, 1].
    """

    train_images: np.ndarray  # (N, 32, 32, 3) uint8
    train_labels: np.ndarray  # (N,) int32
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]  # one value a channel (three for CIFAR)
    std: tuple[float, ...]
    eval_split: str = 'test'

    # What the loop reads of any data it trains on (a streamed set has the same).
    @property
    def num_train(self) -> int:
        return len(self.train_images)

    @property
    def num_eval(self) -> int:
        return len(self.test_images)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])


def default_data_dir() -> str:
    return os.environ.get('CNNZOO_DATA_DIR') or os.path.join(os.path.expanduser('~'), '.cache', 'cnnzoo')


def network_available(url: str | None = None) -> bool:
    """Whether the host of ``url`` (default: where the CIFAR archives are fetched from,
    :func:`cnnzoo.data.download.archive_url`) answers within a few seconds."""
    return download.reachable(url or download.archive_url(ARCHIVE_NAMES['cifar10'][0]))


@dataclasses.dataclass(frozen=True)
class CifarLocation:
    """Where :func:`find_cifar` found a CIFAR dataset: ``kind`` is ``'archive'`` (an official
    archive file), ``'cache'`` (the ``.npz`` decoded from an archive by an earlier run), ``'tfds'``
    (data tensorflow-datasets has prepared, or will prepare) or ``'download'`` (the official
    archive, to be fetched from ``url``); ``path`` is the file or directory (for a download, where
    the archive will be)."""

    name: str
    kind: str
    path: str
    url: str = ''

    def describe(self) -> str:
        """One phrase for the user: where the data is read from."""
        return {'archive': f'the archive {self.path}',
                'cache': f'the copy an earlier run decoded, {self.path}',
                'tfds': f'tensorflow-datasets in {self.path}',
                'download': f'the official archive, fetched from {self.url} into {self.path}'}[self.kind]


def find_cifar(name: str, *, source: str = 'auto', archive: str | None = None, data_dir: str | None = None,
               network_check=None, archive_flag: str = '--config.data.archive=PATH') -> CifarLocation:
    """Where CIFAR ``name`` is, searched as the module docstring says for ``source``; nothing is read
    or fetched (the network is asked only when nothing is found on disk). A one-line DataError when
    it is nowhere and cannot be fetched, saying how to pass an archive (``archive_flag``: how the
    calling command takes one). ``network_check`` (default :func:`network_available`) says whether a
    download can work."""
    if name not in NUM_CLASSES:
        raise DataError(f'unknown dataset {name!r}; choose cifar10 or cifar100')
    if source not in ('auto', 'archive', 'tfds'):
        raise DataError(f'unknown data source {source!r}; choose auto, archive or tfds')
    data_dir = data_dir or default_data_dir()
    if source == 'tfds':
        return CifarLocation(name, 'tfds', data_dir)
    if archive:
        if not os.path.isfile(archive):
            raise DataError(f'archive not found: {archive}')
        return CifarLocation(name, 'archive', archive)
    found = _find_archive(name, data_dir)
    if found:
        return CifarLocation(name, 'archive', found)
    cached = _find_cached(name, data_dir)
    if cached:
        return CifarLocation(name, 'cache', cached)
    if source == 'auto' and _tfds_prepared(name, data_dir):
        return CifarLocation(name, 'tfds', data_dir)
    filename = ARCHIVE_NAMES[name][0]
    if (network_check or network_available)():
        return CifarLocation(name, 'download', os.path.join(data_dir, filename), download.archive_url(filename))
    if source == 'archive':
        raise DataError(f'no {name} archive and no network: pass {archive_flag} or put '
                        f'{" or ".join(ARCHIVE_NAMES[name])} in {data_dir} (from {DOWNLOAD_PAGE})')
    raise DataError(f'{name} not found and no network: download {filename} from '
                    f'{DOWNLOAD_PAGE} and pass {archive_flag} (or put it in {data_dir})')


def load_dataset(name: str, *, source: str = 'auto', archive: str | None = None,
                 data_dir: str | None = None, validation_size: int = 0, seed: int = 0,
                 network_check=None, archive_flag: str = '--config.data.archive=PATH') -> Dataset:
    """Loads ``name`` ('cifar10' or 'cifar100') from where :func:`find_cifar` finds it (see the module
    docstring for the sources). ``archive_flag`` is how the calling command takes an archive, for its
    messages."""
    return make_dataset(*read_cifar(find_cifar(name, source=source, archive=archive, data_dir=data_dir,
                                               network_check=network_check, archive_flag=archive_flag),
                                    data_dir=data_dir),
                        num_classes=NUM_CLASSES[name], validation_size=validation_size, seed=seed)


def read_cifar(location: CifarLocation, *, data_dir: str | None = None, stream=None):
    """The arrays ``(x_train, y_train, x_test, y_test, class_names)`` at ``location``; an archive is
    fetched first when ``location`` says so (a progress line on ``stream``, standard error by
    default), decoded once and cached in ``data_dir`` (the default data directory when None)."""
    data_dir = data_dir or default_data_dir()
    if location.kind == 'download':
        size, md5 = download.PUBLISHED[os.path.basename(location.path)]
        download.fetch(location.url, location.path, size=size, md5=md5, stream=stream)
    if location.kind in ('archive', 'download'):
        return _load_archive_cached(location.path, location.name, data_dir)
    if location.kind == 'cache':
        arrays, problem = _read_cache(location.path, location.name)
        if arrays is None:
            raise DataError(f'{location.path} is damaged ({problem}): delete it, or pass the archive it was '
                            'decoded from')
        return arrays
    return load_tfds(location.name, location.path)


# The training split of CIFAR-10 and CIFAR-100 as published (and as tensorflow-datasets serves it).
OFFICIAL_TRAIN_SIZE = 50_000


def train_set_size(name: str, *, source: str = 'auto', archive: str | None = None, data_dir: str | None = None,
                   validation_size: int = 0) -> int | None:
    """How many training images :func:`load_dataset` with the same arguments gives, known without
    converting an image: from the cache of an archive read before, else from the archive's index
    and labels (:func:`cnnzoo.data.archives.count_train`), else the official size for
    tensorflow-datasets. None where it is not known that way (no archive where one is required, a
    validation split as large as the training set): loading the data then says what is wrong."""
    if name not in NUM_CLASSES or source not in ('auto', 'archive', 'tfds'):
        return None
    data_dir = data_dir or default_data_dir()
    size = OFFICIAL_TRAIN_SIZE
    found = (archive or _find_archive(name, data_dir)) if source != 'tfds' else None
    if found:
        if not os.path.isfile(found):
            return None
        cached = _cached_train_size(found, name, data_dir)
        if cached is None:
            stat = os.stat(found)
            size = _counted_train_size(os.path.abspath(found), name, stat.st_size, stat.st_mtime_ns)
        else:
            size = cached
    elif source == 'archive':
        return None
    return size - validation_size if 0 <= validation_size < size else None


@functools.lru_cache(maxsize=8)
def _counted_train_size(archive: str, name: str, size: int, mtime_ns: int) -> int:
    """:func:`count_train` once per archive and version of it (a command checks its config twice)."""
    return count_train(archive, name)


def _cached_train_size(archive: str, name: str, data_dir: str) -> int | None:
    """The training images in the cache of ``archive`` (the header of its array alone), if there is one."""
    import zipfile

    try:
        with zipfile.ZipFile(_cache_path(archive, name, data_dir)) as z, z.open('x_train.npy') as f:
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}[np.lib.format.read_magic(f)]
            shape = read_header(f)[0]
        return int(shape[0])
    except Exception:  # noqa: BLE001 - no cache, or a damaged one (rebuilt when the data is loaded)
        return None


def make_dataset(x_train, y_train, x_test, y_test, names, *, num_classes: int,
                 validation_size: int = 0, seed: int = 0) -> Dataset:
    """Splits off a validation set if asked (a fixed permutation from ``seed``) and computes stats."""
    eval_split = 'test'
    if validation_size:
        if not 0 < validation_size < len(x_train):
            raise DataError(f'validation_size {validation_size} must be between 1 and {len(x_train) - 1}')
        order = np.random.default_rng(seed).permutation(len(x_train))
        held, kept = np.sort(order[:validation_size]), np.sort(order[validation_size:])
        x_test, y_test = x_train[held], y_train[held]
        x_train, y_train = x_train[kept], y_train[kept]
        eval_split = 'validation'
    mean, std = channel_stats(x_train)
    return Dataset(np.ascontiguousarray(x_train), y_train.astype(np.int32), np.ascontiguousarray(x_test),
                   y_test.astype(np.int32), num_classes, tuple(names), mean, std, eval_split)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, in [0, 1] units (exact sums).

    From each channel's histogram of the 256 values (counted over row blocks, ~6 MiB of indices at a
    time): the sums of values and of squares are then exact in float64 (at most 256 terms of
    integers below 2**53), the same numbers as summing every pixel in integers, and several times
    faster on CIFAR-10's training split (0.6 against 4.1 s on two cores, where every run starts).
    """
    if images.dtype != np.uint8:
        raise TypeError(f'channel_stats takes uint8 images, not {images.dtype}')
    pixels = images.reshape(-1, images.shape[-1])
    n, channels = pixels.shape
    offsets = np.arange(channels, dtype=np.intp) * 256  # channel c counts in bins c*256 ...
    counts = np.zeros(256 * channels, np.int64)
    for start in range(0, n, 1 << 18):
        counts += np.bincount((pixels[start:start + (1 << 18)] + offsets).ravel(), minlength=256 * channels)
    histograms = counts.reshape(channels, 256).astype(np.float64)
    values = np.arange(256, dtype=np.float64)
    mean = histograms @ values / n
    squares = histograms @ (values * values)
    std = np.sqrt(np.maximum(squares / n - mean ** 2, 0.0))
    return tuple(float(v) / 255.0 for v in mean), tuple(float(v) / 255.0 for v in std)


def _find_archive(name: str, data_dir: str) -> str | None:
    for filename in ARCHIVE_NAMES[name]:
        path = os.path.join(data_dir, filename)
        if os.path.isfile(path):
            return path
    return None


def _cache_path(archive: str, name: str, data_dir: str) -> str:
    stat = os.stat(archive)
    key = hashlib.sha256(f'{os.path.abspath(archive)}|{stat.st_size}|{stat.st_mtime_ns}'.encode()).hexdigest()[:16]
    return os.path.join(data_dir, 'cnnzoo-cache', f'{name}-{key}.npz')


def _read_cache(path: str, name: str):
    """The arrays of a decoded copy of ``name``, and None; or None and what is wrong with it (a
    damaged, partial or altered file: its arrays are checked as an archive's are)."""
    try:
        with np.load(path) as z:  # allow_pickle=False: an array of objects is refused, not built
            arrays = (z['x_train'], z['y_train'], z['x_test'], z['y_test'], [str(n) for n in z['names']])
    except Exception as e:  # noqa: BLE001 - a damaged or partial file
        return None, f'not a readable copy ({type(e).__name__})'
    return (None, problem) if (problem := _cache_problem(arrays, NUM_CLASSES[name])) else (arrays, None)


def _cache_problem(arrays, num_classes: int) -> str | None:
    """What is wrong with decoded CIFAR arrays, if anything: shapes, types, label range, names."""
    x_train, y_train, x_test, y_test, names = arrays
    for split, x, y in (('train', x_train, y_train), ('test', x_test, y_test)):
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
            return f'its {split} images are {x.dtype} {x.shape}, not (N, 32, 32, 3) uint8'
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            return f'its {split} labels are {y.dtype} {y.shape} for {len(x)} images'
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            bad = int(y.max() if y.max() >= num_classes else y.min())
            return f'its {split} labels reach {bad}, outside 0..{num_classes - 1}'
    if len(names) != num_classes:
        return f'it names {len(names)} classes, not {num_classes}'
    return None


def _find_cached(name: str, data_dir: str) -> str | None:
    """The newest readable copy of ``name`` that a run decoded into ``data_dir`` (None without one)."""
    folder = os.path.join(data_dir, 'cnnzoo-cache')
    if not os.path.isdir(folder):
        return None
    candidates = [os.path.join(folder, f) for f in os.listdir(folder)
                  if f.startswith(f'{name}-') and f.endswith('.npz') and '.tmp' not in f]
    for path in sorted(candidates, key=os.path.getmtime, reverse=True):
        try:
            with np.load(path) as z:
                if {'x_train', 'y_train', 'x_test', 'y_test', 'names'} <= set(z.files):
                    return path
        except Exception:  # noqa: BLE001, S112 - a damaged copy is passed over
            continue
    return None


def _load_archive_cached(archive: str, name: str, data_dir: str):
    if not os.path.isfile(archive):
        raise DataError(f'archive not found: {archive}')
    cache = _cache_path(archive, name, data_dir)
    if os.path.exists(cache):
        arrays, _ = _read_cache(cache, name)
        if arrays is not None:  # a damaged cache is rebuilt from the archive
            return arrays
    arrays = read_archive(archive, name)
    tmp = f'{cache}.tmp{os.getpid()}.npz'
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        x_train, y_train, x_test, y_test, names = arrays
        np.savez(tmp, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, names=np.array(names))
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only or full data dir: work without a cache
    finally:
        with contextlib.suppress(OSError):  # never leave a partial file (it would keep a full disk full)
            os.remove(tmp)
    return arrays


def _tfds_prepared(name: str, data_dir: str) -> bool:
    from cnnzoo.data.tfds_data import is_prepared

    return is_prepared(TFDS_NAMES[name], data_dir)


def load_tfds(name: str, data_dir: str):
    """Both splits of CIFAR ``name`` as tensorflow-datasets prepared them in ``data_dir``, read with
    ``tfds.data_source`` (no TensorFlow; imported here: tfds is slow to import); not prepared, it
    is prepared first, which needs TensorFlow (:mod:`cnnzoo.data.tfds_data`)."""
    from cnnzoo.data.tfds_data import read_arrays

    x_train, y_train, names = read_arrays(TFDS_NAMES[name], 'train', data_dir)
    x_test, y_test, _ = read_arrays(TFDS_NAMES[name], 'test', data_dir)
    return x_train, y_train, x_test, y_test, names
