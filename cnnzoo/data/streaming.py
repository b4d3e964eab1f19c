"""The streaming input path: data too big for the device, read with grain (``data.loader='grain'``).

Training examples form one endless, deterministic sequence, built from grain's random-access
datasets (``grain.MapDataset``):

    source --shuffle(seed_e)--> epoch e's order of every example --random_map--> decoded, cropped
    --process_share--> process p's part of every batch --batch(B / P)--> local batches

- Epoch ``e`` is a permutation of the training set drawn from the run's seed (grain's index shuffle,
  a new seed each epoch); epochs follow each other without a gap, so a batch may straddle two of
  them when the set does not divide by the batch size, and every example appears once per epoch.
- The host transform (:mod:`cnnzoo.data.images`: decode, the ImageNet crop or a resize) draws from
  a generator keyed by the example's position in that sequence, so it does not depend on which
  process or worker computes it, and a run over 2 processes sees the batches of a run over 1.
- Process ``p`` of ``P`` reads the ``p``-th block of ``B / P`` positions of every global batch
  (:func:`process_share`); the blocks, assembled into one array over the mesh by
  ``jax.make_array_from_process_local_data``, are the one-process batch in its order. No process
  reads another's files.
- Decoding and cropping run in ``data.workers`` grain worker processes (``mp_prefetch``), then a
  thread keeps batches ready on the host and another places them on the devices ahead of the step.

Exact resume: the iterator's state (grain's ``get_state()``) is saved in each checkpoint
(:class:`cnnzoo.run.checkpoints.Checkpoints` with ``data=True``) beside the number of batches taken;
restored with the same number of workers it continues exactly there. grain's state of a
multi-worker iterator is laid out per worker, so with another worker count the iterator is rebuilt
at the checkpoint's batch instead (the datasets are random access): the same batches either way.

Evaluation reads the held-out split once, in order, padded to whole batches with masked examples,
so every example counts once (as on the device path).

Nothing is left in /dev/shm, however a run ends: the workers' batches (shared-memory segments) and
semaphores are named for the run's process (``cnnzoo-<pid namespace>-<pid>-...``); an iterator's
close and the end of the process unlink what is theirs, and a SIGKILL's leftovers (nothing can run
then) are removed by the next start that reads with workers; a worker that dies is one
:class:`~cnnzoo.errors.RunError` line naming it (:mod:`cnnzoo.data.workers`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from functools import partial
from typing import Any

import grain
import numpy as np

from cnnzoo import rngs
from cnnzoo.data import images as image_ops
from cnnzoo.data.workers import (
    WorkerPool,
    absl_flags_parsed,
    claim_shared_memory,
    iterator_segments,
    start_worker,
)
from cnnzoo.errors import DataError

# A preset whose entry says 'host' (cnnzoo.data.presets) is done here, on the host; the others run on
# the device after the host has only decoded (and resized, when data.image_size asks) the images.
HOST_BUFFER, DEVICE_BUFFER = 4, 2  # batches kept ready on the host, and already on the devices


def default_workers() -> int:
    """``data.workers=-1``: one worker process per CPU core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)


def read_options(workers: int) -> grain.ReadOptions:
    """How grain computes batches ahead of their use in each process that reads (this one without
    workers, else each worker): in threads, each a batch at a time, as many as leave every core of
    this process busy (a worker per core by default, so one thread each; fewer workers, more
    threads each, as PIL decodes outside the GIL), and one batch more than the threads ready.
    grain's own default, meant for single records, is 16 threads and 500 elements ahead; the
    elements here are whole batches, so it computed up to 500 batches ahead in every reading
    process, memory and CPU a run had not asked for (``benchmarks/read_ahead.py``, its log in
    ``results/cpu/input_pipeline/``)."""
    cores = default_workers()
    threads = cores if workers <= 0 else -(-cores // workers)
    return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=threads + 1)


class HostTransform:
    """Decode, then the preset's host part, for one example; picklable for grain's workers.

    ``train`` selects the preset's training or evaluation form; ``size`` is the side of the square
    output. For a device preset, the host only decodes and resizes to ``size`` x ``size``.
    """

    def __init__(self, preset: str, size: int, *, train: bool):
        self.preset, self.size, self.train = preset, size, train

    def __call__(self, record: dict, rng: np.random.Generator | None = None) -> dict:
        image = image_ops.decode(record['image'], record['where'])
        if self.preset == 'imagenet':
            if self.train:
                assert rng is not None, 'a training transform is a random map: grain passes its rng'
                image = image_ops.random_resized_crop_flip(image, rng, self.size)
            else:
                image = image_ops.center_crop(image_ops.resize_shorter_side(image, image_ops.eval_resize(self.size)),
                                              self.size)
        else:
            image = image_ops.resize(image, self.size, self.size)
        return {'image': image_ops.to_array(image), 'label': np.int32(record['label']),
                'index': np.int64(record['index'])}


class _EvalExample:
    """Example ``i`` of the padded evaluation sequence: the source's, or a blank one (mask 0) past it."""

    def __init__(self, source, transform: HostTransform):
        self.source, self.transform = source, transform

    def __call__(self, i: int) -> dict:
        if i < len(self.source):
            return {**self.transform(self.source[i]), 'mask': np.bool_(True)}
        size = self.transform.size
        return {'image': np.zeros((size, size, 3), np.uint8), 'label': np.int32(0), 'index': np.int64(-1),
                'mask': np.bool_(False)}


@dataclasses.dataclass
class Stream:
    """The training and evaluation sources of a streamed dataset and how to read them.

    ``process_index``/``process_count`` say which share this process reads (``jax.process_index()``
    and ``jax.process_count()`` in a run; tests pass others).
    """

    train: Sequence[Any]  # random-access sources of records (an archive's, a folder's): len and [i]
    eval: Sequence[Any]
    num_classes: int
    class_names: tuple
    preset: str
    image_size: int
    seed: int
    workers: int = 0
    process_index: int = 0
    process_count: int = 1
    eval_split: str = 'validation'
    name: str = ''
    mean: tuple = image_ops.IMAGENET_MEAN
    std: tuple = image_ops.IMAGENET_STD

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)

    @property
    def num_train(self) -> int:
        return len(self.train)

    @property
    def num_eval(self) -> int:
        return len(self.eval)

    def local_batch(self, global_batch: int) -> int:
        if global_batch % self.process_count:
            raise DataError(f'batch {global_batch} does not divide over {self.process_count} processes')
        return global_batch // self.process_count

    def train_dataset(self, global_batch: int):
        """The endless sequence of this process's training batches, as a grain MapDataset."""
        examples = (grain.MapDataset.source(self.train)
                    .shuffle(seed=rngs.stream_seed(self.seed, rngs.ORDER)).repeat(None)
                    .random_map(HostTransform(self.preset, self.image_size, train=True),
                                seed=rngs.stream_seed(self.seed, rngs.HOST_AUGMENT)))
        local = self.local_batch(global_batch)
        return process_share(examples, global_batch, self.process_index, self.process_count).batch(
            local, drop_remainder=True)

    def eval_dataset(self, global_batch: int):
        """This process's share of the padded evaluation batches (each with a ``mask``)."""
        padded = math.ceil(len(self.eval) / global_batch) * global_batch
        examples = grain.MapDataset.range(padded).map(
            _EvalExample(self.eval, HostTransform(self.preset, self.image_size, train=False)))
        return process_share(examples, global_batch, self.process_index, self.process_count).batch(
            self.local_batch(global_batch))

    def iterate(self, dataset, place=None):
        """A grain iterable over ``dataset``, decoded in this stream's worker processes (none: in
        this process). With ``place`` (host batch -> device arrays), a thread keeps host batches
        ready and another places them on the devices ahead of their use (the two buffers of
        ``grain.experimental.device_put``, with the run's own placement over the mesh)."""
        iterable = dataset.to_iter_dataset(read_options(self.workers))
        if self.workers <= 0:
            return _with_placement(iterable, place)
        absl_flags_parsed()
        segments = iterator_segments(claim_shared_memory())
        iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.workers),
                                        worker_init_fn=partial(start_worker, segments=segments))
        return WorkerPool(_with_placement(iterable, place), segments)

    def train_iterator(self, global_batch: int, *, start: int, saved: dict | None = None,
                       place=None) -> TrainBatches:
        """Training batches from batch ``start`` (the step); ``saved`` is a checkpoint's
        :meth:`TrainBatches.state` for that step; ``place`` as in :meth:`iterate`."""
        return TrainBatches(self, global_batch, start, saved, place)


def process_share(examples, global_batch: int, index: int, count: int):
    """Process ``index``'s part of ``examples``: the ``index``-th contiguous block of
    ``global_batch / count`` positions of every global batch, so that the processes' local batches,
    laid side by side along the mesh's ``data`` axis, are the one-process batch in its order (the
    device presets draw their crops by position in the batch)."""
    if count == 1:
        return examples
    return _ProcessShare(examples, global_batch, index, count)


class _ProcessShare(grain.MapDataset):
    """See :func:`process_share`: position ``j`` of the share is position ``(j // L) * B + index * L
    + j % L`` of ``parent`` (``L = B / count``)."""

    def __init__(self, parent, global_batch: int, index: int, count: int):
        super().__init__(parent)
        self._batch, self._local, self._index = global_batch, global_batch // count, index
        self._length = len(parent) // global_batch * self._local

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, j):
        if isinstance(j, slice):
            return self.slice(j)
        block, offset = divmod(j, self._local)
        return self._parent[block * self._batch + self._index * self._local + offset]

    def __str__(self) -> str:
        return f'ProcessShare[{self._index}]'


class TrainBatches:
    """The training iterator: ``next()`` gives this process's next local batch (numpy), and
    :meth:`state` what a checkpoint stores to continue from here (see the module docstring)."""

    def __init__(self, stream: Stream, global_batch: int, start: int, saved: dict | None, place=None):
        self.stream = stream
        dataset = stream.train_dataset(global_batch)
        if saved is not None and int(saved['batch']) != start:
            raise DataError(f'the checkpoint of step {start} holds the data iterator of batch {saved["batch"]}')
        # grain's state describes this process's share under its worker count: with another worker
        # or process count (a run resumed on fewer or more machines) the iterator is rebuilt at the
        # batch instead; the global batches, hence the shares, are those of the one-process order.
        same_workers = (saved is not None and int(saved['workers']) == stream.workers
                        and int(saved.get('processes', 1)) == stream.process_count)
        kept = saved if same_workers else None
        self.origin = int(kept['origin']) if kept is not None else start
        self.taken = start
        self._iterator = iter(stream.iterate(dataset[self.origin:], place))
        if kept is not None:
            self._iterator.set_state(kept['grain'])

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        batch = next(self._iterator)
        self.taken += 1
        return batch

    def state(self) -> dict:
        """JSON-able: the batches taken, where this iterator began, its workers and grain's state."""
        return {'batch': self.taken, 'origin': self.origin, 'workers': self.stream.workers,
                'processes': self.stream.process_count, 'grain': self._iterator.get_state()}

    def close(self) -> None:
        close = getattr(self._iterator, 'close', None)
        if close:
            close()


def _with_placement(iterable, place):
    """``iterable``, with ``place`` (see :meth:`Stream.iterate`) run ahead of use in two threads."""
    if place is None:
        return iterable
    from grain.experimental import ThreadPrefetchIterDataset

    iterable = ThreadPrefetchIterDataset(iterable, prefetch_buffer_size=HOST_BUFFER).map(place)
    return ThreadPrefetchIterDataset(iterable, prefetch_buffer_size=DEVICE_BUFFER)


def first_image_size(source) -> tuple[int, int]:
    """``(width, height)`` of a source's first image (what ``data.image_size=0`` means for a
    device preset)."""
    record = source[0]
    image = image_ops.decode(record['image'], record['where'])
    return image.size


def open_stream(data, *, train, eval, name: str, split: str, seed: int, image_size: int = 0,  # noqa: A002
                process_index: int = 0, process_count: int = 1, mean: tuple = image_ops.IMAGENET_MEAN,
                std: tuple = image_ops.IMAGENET_STD) -> Stream:
    """The :class:`Stream` of a config's data section over the random-access sources ``train`` and
    ``eval`` (what :mod:`cnnzoo.data.resolver` opened for the section's source; ``name`` and ``split``
    name them in messages; ``mean``/``std`` are torchvision's ImageNet statistics unless the data
    brings its own). ``image_size=0`` takes the data's own size (its first training image, which
    must be square)."""
    if len(train) == 0 or len(eval) == 0:
        raise DataError(f'{name}: the {"training" if len(train) == 0 else "evaluation"} split is empty')
    num_classes = getattr(train, 'num_classes', None) or len(train.classes) or int(max(train.labels)) + 1
    if not image_size:
        width, height = first_image_size(train)
        if width != height:
            raise DataError(f'{name}: images are {width}x{height}, not square; set config.data.image_size '
                            '(they are resized to it) or use config.data.augment=imagenet')
        image_size = width
    workers = default_workers() if data.workers == -1 else data.workers
    return Stream(train=train, eval=eval, num_classes=num_classes, class_names=tuple(train.classes),
                  preset=data.augment, image_size=image_size, seed=seed, workers=workers,
                  process_index=process_index, process_count=process_count, eval_split=split, name=name,
                  mean=mean, std=std)
