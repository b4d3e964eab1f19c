"""Which data a run reads, decided in one place: ``config.data.source`` and ``config.data.loader``.

The sources are the entries of :data:`DATA_SOURCES` (the names ``config.data.source`` may hold), the
ways batches reach the device those of :data:`LOADERS` (``config.data.loader``). Every module that
needs to know something of a run's data asks a function here, never ``config.data.source`` itself:

- :func:`open_data`: what the run consumes, a :class:`~cnnzoo.data.datasets.Dataset` held whole on
  the device or a :class:`~cnnzoo.data.streaming.Stream` read by grain;
- :func:`loader_of`: ``'device'`` or ``'grain'`` (``data.loader='auto'`` asks the source);
- :func:`check_data`: the data section's own checks (:func:`cnnzoo.config.validate` runs it on every
  override); :func:`check_ready`: what a run needs besides (an experiment file may leave
  ``data.folder`` to the command line);
- :func:`train_set_size`: the training set's size, known without reading an image (or None);
- :func:`check_found`: the data is there (a sweep asks before it writes anything);
- :func:`data_label`: how a run's first line names its data.

A new source is one class here (its answers to the questions above, reading through the modules
that implement it) and one ``DATA_SOURCES.add``. This module imports nothing heavy at its top
(``cnnzoo train --help`` reads its registries and must not start JAX): the readers are imported
inside the entries.
"""

from __future__ import annotations

import os

from cnnzoo.data.archives import NUM_CLASSES
from cnnzoo.errors import ConfigError, DataError
from cnnzoo.registry import Registry

CIFAR_NAMES = tuple(NUM_CLASSES)

DATA_SOURCES = Registry('data source', 'data.source')
LOADERS = Registry('data loader', 'data.loader')


def _path(text: str) -> str | None:
    return os.path.expanduser(text) if text else None


class Source:
    """What one data source answers (the defaults: a source that streams, of unknown size)."""

    def holds(self, data) -> bool:
        """Whether the source can give the whole set as arrays, for ``data.loader='device'``."""
        return False

    def check(self, data) -> None:
        """The section's checks that hold for this source whatever the command line adds."""

    def check_ready(self, data) -> None:
        """The checks of a section about to be run (the keys it needs are set)."""

    def train_size(self, data) -> int | None:
        return None

    def check_found(self, data) -> None:
        """A one-line DataError when the data is not where the section says (nothing is read)."""

    def label(self, data) -> str:
        return data.name

    def held(self, data, *, seed: int):
        """The whole set as a :class:`~cnnzoo.data.datasets.Dataset`."""
        raise ConfigError(f'config.data.loader=device holds CIFAR on the device; {self.label(data)} '
                          'streams: use --config.data.loader=grain')

    def streamed(self, data, *, seed: int, training: bool) -> dict:
        """The streamed sources: ``{'train', 'eval', 'name', 'split'}`` and, for data with its own
        statistics, ``'mean'`` and ``'std'`` (:func:`cnnzoo.data.streaming.open_stream`)."""
        raise NotImplementedError


class CifarArchive(Source):
    """CIFAR from its official archive (``search='archive'``), or, with ``search='auto'``, also from
    data tensorflow-datasets prepared (:func:`cnnzoo.data.datasets.find_cifar`)."""

    def __init__(self, search: str):
        self.search = search

    def holds(self, data) -> bool:
        return True

    def check(self, data) -> None:
        if data.name not in CIFAR_NAMES:
            raise ConfigError(f'config.data.name={data.name!r} with config.data.source={data.source!r}: the archive '
                              f'readers know {", ".join(CIFAR_NAMES)}; use --config.data.source=tfds for a '
                              'tensorflow-datasets dataset, or source=folder with data.folder')

    def train_size(self, data) -> int | None:
        from cnnzoo.data.datasets import train_set_size

        return train_set_size(data.name, source=self.search, archive=_path(data.archive),
                              data_dir=_path(data.data_dir), validation_size=data.validation_size)

    def check_found(self, data) -> None:
        from cnnzoo.data.datasets import find_cifar

        find_cifar(data.name, source=self.search, archive=_path(data.archive), data_dir=_path(data.data_dir))

    def held(self, data, *, seed: int):
        from cnnzoo.data.datasets import load_dataset

        return load_dataset(data.name, source=self.search, archive=_path(data.archive), data_dir=_path(data.data_dir),
                            validation_size=data.validation_size, seed=seed)

    def streamed(self, data, *, seed: int, training: bool) -> dict:
        from cnnzoo.data.sources import ArraySource

        ds = self.held(data, seed=seed)
        return {'train': ArraySource(ds.train_images, ds.train_labels, name=f'{data.name} train',
                                     classes=ds.class_names),
                'eval': ArraySource(ds.test_images, ds.test_labels, name=f'{data.name} {ds.eval_split}',
                                    classes=ds.class_names),
                'name': data.name, 'split': ds.eval_split,
                'mean': ds.mean, 'std': ds.std}  # CIFAR's own statistics, as on the device path


class Tfds(Source):
    """Any image classification dataset tensorflow-datasets prepared (:mod:`cnnzoo.data.tfds_data`);
    CIFAR among them can be held on the device."""

    def holds(self, data) -> bool:
        return data.name in CIFAR_NAMES

    def train_size(self, data) -> int | None:
        if data.name not in CIFAR_NAMES:
            return None
        from cnnzoo.data.datasets import train_set_size

        return train_set_size(data.name, source='tfds', data_dir=_path(data.data_dir),
                              validation_size=data.validation_size)

    def held(self, data, *, seed: int):
        if not self.holds(data):
            return super().held(data, seed=seed)
        from cnnzoo.data.datasets import load_dataset

        return load_dataset(data.name, source='tfds', data_dir=_path(data.data_dir),
                            validation_size=data.validation_size, seed=seed)

    def streamed(self, data, *, seed: int, training: bool) -> dict:
        from cnnzoo.data.datasets import default_data_dir
        from cnnzoo.data.tfds_data import tfds_sources

        train, held_out = tfds_sources(data.name, _path(data.data_dir) or default_data_dir(),
                                       train_split=data.train_split, eval_split=data.eval_split,
                                       manual_dir=data.manual_dir)
        return {'train': train, 'eval': held_out, 'name': data.name, 'split': held_out.split}


class Folder(Source):
    """An image folder in torchvision's ImageFolder layout (:mod:`cnnzoo.data.sources`)."""

    def check_ready(self, data) -> None:
        if not data.folder:
            raise ConfigError('config.data.source=folder needs --config.data.folder=PATH (PATH/train/<class>/<image>)')

    def train_size(self, data) -> int | None:
        from cnnzoo.data.sources import FolderSource

        try:
            return len(FolderSource(os.path.expanduser(data.folder), data.train_split))
        except DataError:  # reported, with the rest of the folder's problems, when the data is opened
            return None

    def check_found(self, data) -> None:
        if not os.path.isdir(os.path.expanduser(data.folder)):
            raise DataError(f'image folder {data.folder} not found (config.data.folder)')

    def label(self, data) -> str:
        return data.folder

    def streamed(self, data, *, seed: int, training: bool) -> dict:
        from cnnzoo.data import sources

        if training:
            train, held_out = sources.folder_sources(data.folder, data.train_split, data.eval_split)
        else:  # an evaluation needs no training images: the evaluation split stands in
            held_out = sources.folder_eval_source(data.folder, data.eval_split)
            train = held_out
        return {'train': train, 'eval': held_out, 'name': data.folder, 'split': held_out.split}


DATA_SOURCES.add('auto', CifarArchive('auto'), help='CIFAR: an archive given or in the data directory, the copy '
                 'an earlier run decoded, data tensorflow-datasets prepared there, else the official archive '
                 'fetched (size and MD5 checked)')
DATA_SOURCES.add('archive', CifarArchive('archive'), help="CIFAR's official archive only: given, in the data "
                 'directory, or fetched')
DATA_SOURCES.add('tfds', Tfds(), help='a dataset tensorflow-datasets prepared in the data directory (data.name; '
                 "ArrayRecord, read without TensorFlow); preparing one needs pip install 'cnnzoo[tfds]'")
DATA_SOURCES.add('folder', Folder(), help="an image folder, data.folder/train/<class>/<image> (torchvision's "
                 'ImageFolder layout)')


class Loader:
    """How batches reach the device: checks of the section under this loader, and the opening."""

    def check(self, data, training, source: Source) -> None:
        raise NotImplementedError

    def open(self, source: Source, config, *, training: bool = True, image_size: int = 0, process_index: int = 0,
             process_count: int = 1):
        """What :func:`open_data` returns for this loader (its keywords are :func:`open_data`'s)."""
        raise NotImplementedError


class Held(Loader):
    """The whole set held on the device, augmented inside the step (CIFAR)."""

    def check(self, data, training, source: Source) -> None:
        if not source.holds(data):
            raise ConfigError(f'config.data.loader=device holds CIFAR on the device; {source.label(data)} '
                              'streams: use --config.data.loader=grain')
        from cnnzoo.data.presets import AUGMENTATIONS

        if AUGMENTATIONS.get(data.augment).meta.get('host'):
            raise ConfigError(f'config.data.augment={data.augment!r} crops on the host, in the streaming path: use '
                              '--config.data.loader=grain')
        if data.image_size:
            raise ConfigError(f'config.data.image_size={data.image_size} resizes in the streaming path only '
                              '(data.loader=grain); CIFAR on the device stays 32x32')

    def open(self, source: Source, config, **where):  # the whole set: none of open_data's keywords apply
        return source.held(config.data, seed=config.seed)


class Streamed(Loader):
    """Batches read by grain's worker processes (:mod:`cnnzoo.data.streaming`)."""

    def check(self, data, training, source: Source) -> None:
        streamed = f'config.data.loader=grain (streaming {source.label(data)})'
        if data.augment_mode != 'online':
            raise ConfigError(f"config.data.augment_mode={data.augment_mode!r} needs the whole set on the device; "
                              f'{streamed} augments online')
        if data.validation_size:
            raise ConfigError(f'config.data.validation_size={data.validation_size} splits a set held on the device; '
                              f'with {streamed} name the held-out split: config.data.eval_split')
        if training.num_seeds > 1:
            raise ConfigError(f'config.training.num_seeds={training.num_seeds} trains replicas on their own data '
                              f'orders from the set on the device; with {streamed}, run one seed per run')

    def open(self, source: Source, config, *, training: bool = True, image_size: int = 0, process_index: int = 0,
             process_count: int = 1):
        from cnnzoo.data.streaming import open_stream

        parts = source.streamed(config.data, seed=config.seed, training=training)
        return open_stream(config.data, **parts, seed=config.seed, image_size=image_size,
                           process_index=process_index, process_count=process_count)


LOADERS.add('auto', None, help="'device' for CIFAR, 'grain' for the rest")
LOADERS.add('device', Held(), help='the whole set held on the device, augmented inside the step (CIFAR)')
LOADERS.add('grain', Streamed(), help="streamed by grain's worker processes (data.workers), for sets too big "
            'for the device')


def loader_of(data) -> str:
    """The loader a data section resolves to: ``'device'`` or ``'grain'`` (``data.loader='auto'``:
    the device for a source that can hold the set, CIFAR, and grain for the rest)."""
    LOADERS.get(data.loader)
    if data.loader != 'auto':
        return data.loader
    return 'device' if DATA_SOURCES[data.source].holds(data) else 'grain'


def check_data(data, training) -> None:
    """The data section's checks (a one-line ConfigError): its source and loader, the source's own
    checks, the ranges, and what the resolved loader needs of the rest."""
    source = DATA_SOURCES[data.source]
    source.check(data)
    if data.validation_size < 0:
        raise ConfigError('config.data.validation_size must be >= 0')
    if data.workers < -1:
        raise ConfigError(f'config.data.workers={data.workers!r}: must be >= 0, or -1 for one per CPU core')
    if data.image_size < 0:
        raise ConfigError(f'config.data.image_size={data.image_size!r}: must be >= 0 (0: the preset\'s or data\'s '
                          'size)')
    LOADERS[loader_of(data)].check(data, training, source)


def check_ready(data) -> None:
    """What a run needs of its data section besides :func:`check_data` (keys an experiment file may
    leave to the command line)."""
    DATA_SOURCES[data.source].check_ready(data)


def open_data(config, *, training: bool = True, image_size: int = 0, process_index: int = 0,
              process_count: int = 1):
    """What a run of ``config`` consumes: a :class:`~cnnzoo.data.datasets.Dataset` held whole on the
    device, or a :class:`~cnnzoo.data.streaming.Stream` of process ``process_index``'s share of
    ``process_count`` (``image_size``: the side of the streamed images, 0 for the data's own;
    ``training=False``: an image folder's evaluation split alone is needed)."""
    return LOADERS[loader_of(config.data)].open(DATA_SOURCES[config.data.source], config, training=training,
                                                 image_size=image_size, process_index=process_index,
                                                 process_count=process_count)


def train_set_size(data) -> int | None:
    """The number of training examples of a data section, counted without reading an image (an
    archive's index and labels, a folder's file names; the published size for tensorflow-datasets'
    CIFAR); None where only loading the data tells (another tfds dataset, data not found)."""
    return DATA_SOURCES[data.source].train_size(data)


def check_found(data) -> None:
    """A one-line DataError when a section's data is not there (CIFAR searched as a run searches it,
    an image folder must exist; a tfds dataset by name is found by the run itself). Nothing is read."""
    DATA_SOURCES[data.source].check_found(data)


def data_label(data) -> str:
    """How a run names its data: the dataset's name, or the image folder."""
    return DATA_SOURCES[data.source].label(data)
