"""Data that tensorflow-datasets has prepared, read without TensorFlow; damaged data in one line.

tensorflow-datasets writes a prepared dataset as ``<data_dir>/<name>/<version>/``: its description
``dataset_info.json`` (features, splits and each split's shards with their lengths) and the shards,
ArrayRecord files that ``tfds.data_source`` reads at random (no TensorFlow needed). Preparing a
dataset runs its builder, which needs TensorFlow: ``pip install 'cnnzoo[tfds]'``
(:func:`require_builder` says so in one line where it is missing).

Before a run reads a split, :class:`TfdsSource` checks what can be checked cheaply, each problem one
:class:`~cnnzoo.errors.DataError` line naming the file:

- ``dataset_info.json`` missing beside the shards, or not valid JSON;
- a split the dataset lacks (named with the splits it has), in ``data.train_split``/``eval_split``;
- each shard of the split: present, and holding the number of records ``dataset_info.json`` gives
  (an ArrayRecord file ends with an index of its records, read without reading the records: a
  shard cut short, emptied or overwritten loses it).

Damage inside a shard that leaves its index whole is found when the record is read, in a grain
worker during training: one line naming the shard and the example, and the run's last checkpoint
is kept. tfds' warning that OpenCV is missing (it decodes with pillow then, as cnnzoo does
everywhere) is silenced: it is said by every worker process and asks nothing of the user.
"""

from __future__ import annotations

import bisect
import importlib.util
import json
import logging
import os
import re

from cnnzoo.errors import DataError, first_line

TFDS_EVAL_SPLITS = ('validation', 'test')
TFDS_HOST = 'https://storage.googleapis.com/'  # where tensorflow-datasets' builders download from
_SPLIT_NAME = re.compile(r'^\s*([^\[\]+\s]+)')
_VERSION = re.compile(r'^\d+\.\d+\.\d+$')


class _NoOpenCVWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return 'OpenCV is not installed' not in str(record.msg)


_OPENCV_FILTER = _NoOpenCVWarning()


def quiet_tfds() -> None:
    """Silences tfds' "OpenCV is not installed" warning in this process (see the module docstring)."""
    logging.getLogger('absl').addFilter(_OPENCV_FILTER)  # adding the same filter twice is a no-op


def builder_available() -> bool:
    """Whether tensorflow-datasets' builders can run here (they need TensorFlow)."""
    return importlib.util.find_spec('tensorflow') is not None


def require_builder(name: str, data_dir: str, why: str) -> None:
    """A one-line DataError unless TensorFlow is installed, naming the extra that brings it."""
    if not builder_available():
        raise DataError(f'tfds dataset {name} is {why} in {data_dir}, and preparing it runs its tensorflow-datasets '
                        "builder, which needs TensorFlow: pip install 'cnnzoo[tfds]' (or prepare it elsewhere and "
                        'copy the prepared directory here)')


def prepared_versions(name: str, data_dir: str) -> list[str]:
    """The version directories of ``name`` (``mnist``, ``imagenette/320px-v2``, ``mnist:3.0.1``)
    under ``data_dir`` that hold shards or a ``dataset_info.json``."""
    base, _, version = name.partition(':')
    root = os.path.join(data_dir, *base.split('/'))
    if not os.path.isdir(root):
        return []
    # a version is major.minor.patch; tfds prepares into '<version>.incomplete<random>' and renames it
    # when done, so such a directory (an interrupted build) is not a prepared version
    names = [version] if version else sorted(e for e in os.listdir(root) if _VERSION.match(e))
    found = []
    for entry in names:
        path = os.path.join(root, entry)
        if os.path.isdir(path) and any(f == 'dataset_info.json' or '.array_record-' in f or '.tfrecord-' in f
                                       for f in os.listdir(path)):
            found.append(path)
    return found


def check_description(name: str, data_dir: str) -> None:
    """A one-line DataError for a prepared version of ``name`` whose ``dataset_info.json`` is missing
    beside its shards, is not valid JSON or does not describe a dataset."""
    from google.protobuf import json_format
    from tensorflow_datasets.core.proto import dataset_info_pb2

    for version in prepared_versions(name, data_dir):
        info = os.path.join(version, 'dataset_info.json')
        if not os.path.isfile(info):
            raise DataError(f'{info} is missing: the shards beside it cannot be read without it (prepare {name} '
                            'again, or restore the file)')
        try:
            with open(info, encoding='utf-8') as f:
                text = f.read()
            json.loads(text)
            json_format.Parse(text, dataset_info_pb2.DatasetInfo(), ignore_unknown_fields=True)
        except (OSError, UnicodeDecodeError, ValueError, json_format.ParseError) as e:
            raise DataError(f'{info} is not a readable dataset description ({first_line(e, typed=True)}): prepare '
                            f'{name} again, or restore the file') from None


def is_prepared(name: str, data_dir: str) -> bool:
    """Whether ``name`` is prepared as ArrayRecord in ``data_dir`` (a ``dataset_info.json`` beside
    ArrayRecord shards)."""
    return any(os.path.isfile(os.path.join(v, 'dataset_info.json'))
               and any('.array_record-' in f for f in os.listdir(v)) for v in prepared_versions(name, data_dir))


def split_names(expression: str) -> list[str]:
    """The splits a tfds split expression reads: ``'train[:90%]+validation'`` -> train, validation."""
    return [m.group(1) for part in expression.split('+') if (m := _SPLIT_NAME.match(part))]


def check_split(name: str, split: str, splits, key: str) -> None:
    """A one-line DataError when ``split`` reads a split that a prepared dataset lacks."""
    if not splits:  # not prepared (or tfds' mock data): what there is, is known once it is prepared
        return
    missing = [s for s in split_names(split) if s not in splits]
    if missing:
        raise DataError(f'tfds dataset {name} has no split {missing[0]!r} (config.{key}={split!r}); its splits: '
                        f'{", ".join(sorted(splits))}')


def _records_in(path: str) -> int:
    """The number of records an ArrayRecord file's index gives (0 when the index cannot be read)."""
    from array_record.python.array_record_module import ArrayRecordReader

    reader = ArrayRecordReader(path, 'readahead_buffer_size:0')
    try:
        return reader.num_records()
    finally:
        try:
            reader.close()
        except RuntimeError:  # a reader of a damaged file reports the damage again on close
            pass


def check_shards(instructions) -> None:
    """A one-line DataError for the first shard among tfds' file instructions of a split that is
    missing or does not hold the records the dataset's description gives."""
    for fi in instructions:
        if not os.path.isfile(fi.filename):
            raise DataError(f'{fi.filename} is missing (a shard of the prepared dataset)')
        size = os.path.getsize(fi.filename)
        count = _records_in(fi.filename) if size else 0
        if count != fi.examples_in_shard:
            raise DataError(f'{fi.filename} is damaged: it holds {"no file data" if not size else f"{count} records"}'
                            f' where dataset_info.json gives {fi.examples_in_shard} (cut short, emptied or '
                            'overwritten?); prepare the dataset again, or restore the file')


class TfdsSource:
    """One split of a tensorflow-datasets image classification dataset (``image``/``label``), read
    at random through ``tfds.data_source``; see the module docstring for what is checked."""

    def __init__(self, name: str, split: str, data_dir: str, *, manual_dir: str = '', download: bool = True,
                 network_check=None, key: str = 'data.train_split'):
        import tensorflow_datasets as tfds

        quiet_tfds()
        self.name, self.split = name, split
        check_description(name, data_dir)
        try:
            builder = tfds.builder(name, data_dir=data_dir)
        except Exception as e:  # noqa: BLE001 - tfds raises many kinds; report one line
            raise DataError(f'tensorflow-datasets has no dataset {name!r} in {data_dir}: {first_line(e)}') from None
        features = builder.info.features
        if features is None or 'image' not in features or 'label' not in features:
            raise DataError(f'tfds dataset {name} is not an image classification set '
                            f'(features: {", ".join((features or {}).keys())}; expected image and label)')
        check_split(name, split, builder.info.splits, key)
        self.classes = tuple(features['label'].names) if hasattr(features['label'], 'names') else ()
        self.num_classes = int(features['label'].num_classes)
        try:
            self.reader = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
        except Exception as e:  # noqa: BLE001 - not prepared (or not as ArrayRecord)
            self.reader = self._prepare(name, split, data_dir, manual_dir, download, network_check, e)
        self._shards, self._starts = self._layout()
        check_shards(self._shards)

    @staticmethod
    def _prepare(name, split, data_dir, manual_dir, download, network_check, error):
        import tensorflow_datasets as tfds

        from cnnzoo.data.download import reachable

        if download:
            require_builder(name, data_dir, 'not prepared as ArrayRecord')
        if not download or not (manual_dir or (network_check or (lambda: reachable(TFDS_HOST)))()):
            raise DataError(f'tfds dataset {name} ({split}) is not prepared as ArrayRecord in {data_dir} '
                            f'({first_line(error)}) and there is no network: prepare it with '
                            f'`tfds build {name} --data_dir={data_dir} --file_format=array_record`') from None
        try:
            builder = tfds.builder(name, data_dir=data_dir, file_format='array_record')
            config = tfds.download.DownloadConfig(manual_dir=os.path.expanduser(manual_dir) or None)
            builder.download_and_prepare(download_config=config)
            return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
        except Exception as e:  # noqa: BLE001
            raise DataError(f'tensorflow-datasets could not prepare {name} in {data_dir}: {first_line(e)}') from None

    def _layout(self):
        """The shards this split reads (tfds' file instructions) and the index of each one's first
        example; none under tfds' mock data, which has no files."""
        try:
            instructions = list(self.reader.dataset_info.splits[self.split].file_instructions)
        except Exception:  # noqa: BLE001 - mock data: no splits, no files
            return [], []
        starts, total = [], 0
        for fi in instructions:
            starts.append(total)
            total += fi.take
        return instructions, starts

    def shard_of(self, i: int) -> str:
        """The file that holds example ``i`` of this split ('' when not known)."""
        if not self._shards:
            return ''
        return self._shards[bisect.bisect_right(self._starts, i) - 1].filename

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> dict:
        try:
            record = self.reader[i]
        except Exception as e:  # noqa: BLE001 - a damaged record: one line naming the shard
            where = self.shard_of(i) or f'{self.name}[{self.split}]'
            raise DataError(f'{where} is damaged: example {i} of {self.name}[{self.split}] cannot be read '
                            f'({first_line(e, typed=True)}); prepare the dataset again, or restore the file') from None
        return {'image': record['image'], 'label': int(record['label']), 'index': i,
                'where': f'{self.name}[{self.split}] example {i}'}

    def __setstate__(self, state: dict) -> None:  # in a grain worker: quiet there too
        self.__dict__.update(state)
        quiet_tfds()

    def describe(self, i: int) -> str:
        return f'{self.name}[{self.split}] example {i}'


def tfds_sources(name: str, data_dir: str, *, train_split: str = 'train', eval_split: str = '',
                 manual_dir: str = '', network_check=None) -> tuple[TfdsSource, TfdsSource]:
    """The training and evaluation splits of tfds dataset ``name``; ``eval_split=''`` is its
    ``validation`` split where it has one, else ``test``."""
    import tensorflow_datasets as tfds

    quiet_tfds()
    if not eval_split:
        check_description(name, data_dir)
        try:
            splits = tfds.builder(name, data_dir=data_dir).info.splits
        except Exception as e:  # noqa: BLE001
            raise DataError(f'tensorflow-datasets has no dataset {name!r} in {data_dir}: {first_line(e)}') from None
        eval_split = next((s for s in TFDS_EVAL_SPLITS if s in splits), 'test')
    train = TfdsSource(name, train_split, data_dir, manual_dir=manual_dir, network_check=network_check)
    return train, TfdsSource(name, eval_split, data_dir, manual_dir=manual_dir, network_check=network_check,
                             key='data.eval_split')


def read_arrays(name: str, split: str, data_dir: str, *, network_check=None, chunk: int = 1024):
    """All of split ``split`` of ``name`` as ``(images (N, H, W, C) uint8, labels (N,) int32, class
    names)``: CIFAR held on the device, from data tfds prepared (prepared first when it is not, as
    :class:`TfdsSource` does)."""
    import numpy as np

    source = TfdsSource(name, split, data_dir, network_check=network_check,
                        key='data.train_split' if split == 'train' else 'data.eval_split')
    images, labels = [], []
    for start in range(0, len(source), chunk):
        keys = list(range(start, min(start + chunk, len(source))))
        try:
            records = source.reader.__getitems__(keys)
        except Exception:  # noqa: BLE001 - find the damaged record and name its shard
            records = [source[i] for i in keys]
        images += [r['image'] for r in records]
        labels += [int(r['label']) for r in records]
    return np.stack(images).astype(np.uint8), np.asarray(labels, np.int32), list(source.classes)
