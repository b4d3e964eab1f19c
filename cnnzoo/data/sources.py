"""Random-access sources of labelled images for the streaming path: an image folder, or arrays in
memory (any image classification dataset of tensorflow-datasets: :mod:`cnnzoo.data.tfds_data`).

A source is a sequence: ``len(source)`` examples, ``source[i] -> {'image', 'label', 'index'}``
where ``image`` is encoded bytes (a folder's files) or a decoded uint8 array (tfds), ``label`` an
int and ``index`` is ``i`` (so a bad example can be named wherever it turns up). Sources are
picklable, so grain's worker processes can read them.

- ``FolderSource(root, split)``: ``root/<split>/<class>/<image>``, the layout of torchvision's
  ``ImageFolder``: classes are the sub-folders' names in sorted order (ImageNet's ``n01440764``...
  then get the indices torchvision's checkpoints use); files with an image extension, sorted. The
  evaluation split takes the training split's classes (a class it lacks is fine; one the training
  split lacks is an error). An empty class folder is a one-line :class:`DataError`: a class with no
  images is a mistake in the data, and skipping it would shift every later label.
- ``ArraySource(images, labels)``: arrays already in memory (CIFAR from its archive, streamed
  rather than held on the device: ``data.loader='grain'`` with the archive).
- ``TfdsSource(name, split, data_dir)`` (:mod:`cnnzoo.data.tfds_data`): ``tfds.data_source``,
  tensorflow-datasets' random-access reader of data prepared as ArrayRecord (no TensorFlow needed
  to read). Data not prepared yet is prepared through the builder as ArrayRecord when the network
  answers (imagenet2012 from its manual-download directory, ``data.manual_dir``), else a one-line
  error says what to do.
"""

from __future__ import annotations

import os

from cnnzoo.errors import DataError

# What torchvision's ImageFolder reads, compared without case.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')
FOLDER_EVAL_SPLITS = ('val', 'validation', 'test')


class FolderSource:
    """The images of ``root/<split>/<class>/``; see the module docstring."""

    def __init__(self, root: str, split: str, classes: tuple[str, ...] | None = None):
        self.root, self.split = root, split
        directory = os.path.join(root, split)
        if not os.path.isdir(directory):
            raise DataError(f'image folder {directory} not found (expected {root}/{split}/<class>/<image>)')
        found = sorted(e.name for e in os.scandir(directory) if e.is_dir())
        if not found:
            raise DataError(f'{directory} has no class folders (expected {directory}/<class>/<image>)')
        if classes is None:
            classes = tuple(found)
        else:
            extra = [c for c in found if c not in classes]
            if extra:
                raise DataError(f'{directory} has classes the training split lacks: {", ".join(extra[:5])}'
                                + (f' and {len(extra) - 5} more' if len(extra) > 5 else ''))
        self.classes = tuple(classes)
        index = {name: i for i, name in enumerate(self.classes)}
        self.files: list[str] = []
        self.labels: list[int] = []
        for name in found:
            folder = os.path.join(directory, name)
            images = sorted(e.name for e in os.scandir(folder)
                            if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
            if not images:
                raise DataError(f'class folder {folder} has no images ({" ".join(IMAGE_EXTENSIONS)}); '
                                'remove the folder or add its images')
            self.files += [os.path.join(folder, f) for f in images]
            self.labels += [index[name]] * len(images)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        path = self.files[i]
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError as e:
            raise DataError(f'cannot read {path}: {e.strerror}') from None
        return {'image': data, 'label': self.labels[i], 'index': i, 'where': path}

    def describe(self, i: int) -> str:
        return self.files[i]


def folder_sources(root: str, train_split: str = 'train', eval_split: str = '') -> tuple[FolderSource, FolderSource]:
    """The training and evaluation sources of an image folder; ``eval_split=''`` takes the first of
    ``val``, ``validation``, ``test`` that exists."""
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise DataError(f'image folder {root} not found')
    if not eval_split:
        eval_split = next((s for s in FOLDER_EVAL_SPLITS if os.path.isdir(os.path.join(root, s))), '')
        if not eval_split:
            raise DataError(f'{root} has no evaluation split: expected one of '
                            f'{", ".join(f"{root}/{s}/" for s in FOLDER_EVAL_SPLITS)}')
    train = FolderSource(root, train_split)
    return train, FolderSource(root, eval_split, classes=train.classes)


def folder_eval_source(root: str, eval_split: str = '') -> FolderSource:
    """An image folder's evaluation split alone (checking a checkpoint needs no training images);
    its classes are the training split's when there is one."""
    root = os.path.expanduser(root)
    if os.path.isdir(os.path.join(root, 'train')):
        return folder_sources(root, 'train', eval_split)[1]
    split = eval_split or next((s for s in FOLDER_EVAL_SPLITS if os.path.isdir(os.path.join(root, s))), 'val')
    return FolderSource(root, split)


class ArraySource:
    """Images ``(N, H, W, C)`` uint8 and their labels, in memory."""

    def __init__(self, images, labels, *, name: str = 'arrays', classes: tuple[str, ...] = ()):
        self.images, self.labels, self.name, self.classes = images, labels, name, tuple(classes)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {'image': self.images[i], 'label': int(self.labels[i]), 'index': i, 'where': self.describe(i)}

    def describe(self, i: int) -> str:
        return f'{self.name} image {i}'


def write_image_folder(images, labels, class_names, directory: str, *, quality: int = 95) -> int:
    """Writes ``images`` (N, H, W, 3 uint8) as ``directory/<class name>/<i>.jpg``; returns N."""
    from PIL import Image

    for name in class_names:
        os.makedirs(os.path.join(directory, name), exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(image).save(os.path.join(directory, class_names[int(label)], f'{i:06d}.jpg'), quality=quality)
    return len(images)


def cifar_to_folder(archive: str | None, out: str, *, per_class_train: int = 100, per_class_val: int = 20,
                    name: str = 'cifar10', data_dir: str | None = None, network_check=None,
                    archive_flag: str = '--archive FILE', announce=None) -> tuple[int, int, str]:
    """An image folder (``out/train/<class>/``, ``out/val/<class>/``) of the first ``per_class_*``
    images of each class of CIFAR, as JPEG files: a small real folder to try the streaming path on.
    CIFAR is found exactly as a run finds it (:func:`cnnzoo.data.datasets.find_cifar`, with
    ``data.source='auto'``): ``archive`` when given, else an archive in ``data_dir``, the copy a run
    decoded there, data tfds prepared, or the official archive fetched into ``data_dir``. Returns the
    numbers of images written and where CIFAR was read from; ``announce(text)``, when given, is told
    where before the reading starts (decoding an archive takes seconds). Nothing is written when
    CIFAR is not found."""
    import numpy as np

    from cnnzoo.data.datasets import find_cifar, read_cifar

    location = find_cifar(name, archive=os.path.expanduser(archive) if archive else None, data_dir=data_dir,
                          network_check=network_check, archive_flag=archive_flag)
    if announce is not None:
        announce(f'reading {name} from {location.describe()}')
    x_train, y_train, x_test, y_test, names = read_cifar(location, data_dir=data_dir)

    def first(labels, per_class):
        return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(len(names))]))

    train, val = first(y_train, per_class_train), first(y_test, per_class_val)
    return (write_image_folder(x_train[train], y_train[train], names, os.path.join(out, 'train')),
            write_image_folder(x_test[val], y_test[val], names, os.path.join(out, 'val')), location.describe())
