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
then) are removed by the next start that reads with workers (:func:`remove_orphans`). A worker that
dies is one :class:`~cnnzoo.errors.RunError` line naming it (:func:`worker_death`).
"""

from __future__ import annotations

import atexit
import dataclasses
import gc
import itertools
import math
import os
import re
import secrets
from functools import partial

import grain
import numpy as np

from cnnzoo.data import images as image_ops
from cnnzoo.errors import DataError, RunError

# Presets whose work is done on the host; the others (cnnzoo.data.augment) run on the device after
# the host has only decoded (and resized, when data.image_size asks) the images.
HOST_PRESETS = ('imagenet',)
_ORDER_STREAM, _AUGMENT_STREAM = 2, 4  # as the device path's data order, a stream of the seed
HOST_BUFFER, DEVICE_BUFFER = 4, 2  # batches kept ready on the host, and already on the devices


def stream_seed(seed: int, stream: int) -> int:
    """A 32-bit seed for grain from the run's seed and a stream number."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def default_workers() -> int:
    """``data.workers=-1``: one worker process per CPU core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)


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

    train: object
    eval: object
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
                    .shuffle(seed=stream_seed(self.seed, _ORDER_STREAM)).repeat(None)
                    .random_map(HostTransform(self.preset, self.image_size, train=True),
                                seed=stream_seed(self.seed, _AUGMENT_STREAM)))
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
        iterable = dataset.to_iter_dataset()
        if self.workers <= 0:
            return _with_placement(iterable, place)
        _absl_flags_parsed()
        owner = claim_shared_memory()
        segments = f'{owner}-{next(_ITERATORS)}_'
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
        self.origin = int(saved['origin']) if same_workers else start
        self.taken = start
        self._iterator = iter(stream.iterate(dataset[self.origin:], place))
        if same_workers:
            self._iterator.set_state(saved['grain'])

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


# What grain's workers leave in /dev/shm. Each batch a worker makes travels to the run's process in a
# POSIX shared-memory segment, and each worker's queues and events are named semaphores; both are
# files in /dev/shm that outlive their processes unless unlinked. Python unlinks them when it can (a
# finished or failed run, a SIGTERM; the resource tracker after a SIGKILL of the run's process
# alone), but a SIGKILL of the whole process group (a scheduler's) kills the tracker too, and the
# run's batches and semaphores then stay until a reboot. So cnnzoo names them for their owner
# (``cnnzoo-<pid namespace>-<pid>-...``, the pid of the run's process) and a run that starts workers
# first removes the entries of owners that are gone (:func:`remove_orphans`); the segments of one
# iterator also carry its number, so that closing it removes whatever its workers left.
SHM_DIR = '/dev/shm'
_OWNED = re.compile(r'^(?:sem\.)?cnnzoo-(\d+)-(\d+)-')
_ITERATORS = itertools.count()
_WORKER_DIED = re.compile(r'Worker process was terminated unexpectedly with exit code (-?\d+)')


def _pid_namespace() -> int:
    """The inode of this process's pid namespace (0 where there is no /proc): a pid means a process
    only within its namespace, and containers may share /dev/shm without sharing pids."""
    try:
        return int(re.sub(r'\D', '', os.readlink('/proc/self/ns/pid')) or 0)
    except OSError:
        return 0


def owner_prefix(pid: int | None = None) -> str:
    """``cnnzoo-<pid namespace>-<pid>``: how the shared memory of process ``pid`` (this one) begins."""
    return f'cnnzoo-{_pid_namespace()}-{os.getpid() if pid is None else pid}'


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_orphans(directory: str = SHM_DIR) -> list[str]:
    """Removes the shared-memory segments and semaphores in ``directory`` that cnnzoo named for a
    process of this pid namespace that no longer runs; returns their names. Unlinking takes only
    the name: a process that still maps a segment (a worker that has not yet noticed its parent's
    end) keeps its memory until it ends."""
    removed = []
    namespace = str(_pid_namespace())
    try:
        entries = os.listdir(directory)
    except OSError:  # no /dev/shm (macOS): nothing can have been left there
        return removed
    for entry in entries:
        match = _OWNED.match(entry)
        if match is None or match.group(1) != namespace or _alive(int(match.group(2))):
            continue
        try:
            os.unlink(os.path.join(directory, entry))
        except OSError:  # removed meanwhile by another start, or not ours to remove
            continue
        removed.append(entry)
    return removed


_claimed_by = None  # the pid that last claimed: a forked child claims anew, under its own name


def claim_shared_memory() -> str:
    """Before this process starts grain workers: removes what dead runs left in /dev/shm (once per
    process) and names this process's semaphores for it; returns :func:`owner_prefix`."""
    global _claimed_by
    from multiprocessing import process

    owner = owner_prefix()
    if _claimed_by != os.getpid():
        remove_orphans()
        atexit.register(_release_at_exit, f'{owner}-', os.getpid())
        _claimed_by = os.getpid()
    # multiprocessing names a semaphore '<semprefix>-<random>' (synchronize.SemLock._make_name); the
    # prefix is the process's own setting, '/mp' by default
    process.current_process()._config['semprefix'] = f'/{owner}'
    return owner


def start_worker(worker_index: int = 0, worker_count: int = 0, *, segments: str) -> None:
    """Run in each grain worker as it starts: it ends with its parent (:func:`exit_with_parent`),
    names the shared memory of its batches ``/<segments><random>``, and calls itself
    ``cnnzoo-data-<index>`` (what ``ps -o comm`` and ``top`` show, on Linux)."""
    from multiprocessing import shared_memory

    exit_with_parent()
    _name_process(f'cnnzoo-data-{worker_index}')
    # SharedMemory(create=True) takes its name from this module function (psm_<random> by default)
    shared_memory._make_filename = lambda: f'/{segments}{secrets.token_hex(4)}'


def _name_process(name: str) -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):  # not Linux: the name is only a convenience
        pass


def remove_segments(segments: str, directory: str = SHM_DIR) -> list[str]:
    """Unlinks the shared-memory segments named ``<segments>...`` that no part of this process still
    maps (what workers killed or stopped in the middle of a batch left), and tells Python's
    resource tracker, which would otherwise report them as leaked at exit; returns their names."""
    from multiprocessing import resource_tracker

    try:
        entries = [e for e in os.listdir(directory) if e.startswith(segments)]
    except OSError:
        return []
    if not entries:
        return []
    try:
        with open('/proc/self/maps') as f:
            mapped = f.read()
    except OSError:
        return []  # cannot tell which are in use: leave them to their owners
    removed = []
    for entry in entries:
        if f'{directory}/{entry}' in mapped:
            continue  # a batch still held here: unlinked when it is freed
        try:
            os.unlink(os.path.join(directory, entry))
        except OSError:
            continue
        # a worker registers each segment it creates with the tracker the run shares with it, but one
        # killed in between made the file without registering it, and the tracker reports a name it
        # does not hold with a traceback: registering first (a set: no-op if held) makes both cases one
        resource_tracker.register(f'/{entry}', 'shared_memory')
        resource_tracker.unregister(f'/{entry}', 'shared_memory')
        removed.append(entry)
    return removed


def release_segments(segments: str) -> list[str]:
    """Frees the batches only reference cycles still hold, waits for grain to have unlinked those it
    was asked to (it unlinks in a background thread, which the end of the program would cut short:
    what it had not done yet the resource tracker reports as leaked), then :func:`remove_segments`."""
    from grain._src.python.ipc.shared_memory_array import SharedMemoryArray

    gc.collect()
    deleting = SharedMemoryArray._del_thread_pool
    if deleting is not None:
        try:
            deleting.apply(int)  # one thread, first come first served: the earlier deletions are done
        except ValueError:  # the pool was already stopped at exit: nothing pending can run
            pass
    return remove_segments(segments)


def _release_at_exit(segments: str, pid: int) -> None:
    if os.getpid() == pid:  # not in a child forked after the claim: its parent's batches are not its own
        release_segments(segments)


def worker_death(error: BaseException) -> RunError | None:
    """The one-line error for grain's report of a worker process that died (None for any other
    error): ``data worker N of W died (killed by signal S); run the same command to resume``."""
    match = _WORKER_DIED.search(str(error))
    if match is None:
        return None
    code = int(match.group(1))
    how = f'killed by signal {-code}' if code < 0 else f'exit status {code}'
    who = 'a data worker'
    tb = error.__traceback__
    while tb is not None:  # the worker's iterator is among the frames grain raised it from
        context = getattr(getattr(tb.tb_frame.f_locals.get('self'), '_iter_parent', None), '_mp_context', None)
        if context is not None:
            who = f'data worker {context.process_index} of {context.process_count}'
        tb = tb.tb_next
    return RunError(f'{who} died ({how}); run the same command to resume')


class WorkerPool:
    """A grain iterable read by worker processes, whose iterators turn a worker's death into one
    :class:`RunError` line and, closed, leave nothing of theirs in /dev/shm."""

    def __init__(self, iterable, segments: str):
        self.iterable, self.segments = iterable, segments

    def __iter__(self):
        return _WorkerPoolIterator(iter(self.iterable), self.segments)


class _WorkerPoolIterator:
    def __init__(self, iterator, segments: str):
        self._iterator, self._segments = iterator, segments

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._iterator)
        except RuntimeError as e:
            died = worker_death(e)
            if died is None:
                raise
            raise died from None

    def get_state(self):
        return self._iterator.get_state()

    def set_state(self, state) -> None:
        self._iterator.set_state(state)

    def close(self) -> None:
        """Stops the workers and removes what they left (see :func:`release_segments`)."""
        self._iterator.close()
        release_segments(self._segments)


def exit_with_parent(worker_index: int = 0, worker_count: int = 0, *, interval: float = 0.5) -> None:
    """Run in each grain worker as it starts: the worker ends itself once its parent is gone.

    A run killed with SIGKILL cannot stop its workers, and an orphaned worker would go on holding
    its share of the machine and the parent's standard output (a scheduler or a pipe reading that
    output would wait for it). A daemon thread checks every ``interval`` seconds whether the worker
    was handed to another parent, and then exits the process.
    """
    import threading
    import time

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name='cnnzoo-parent-watch').start()


def _absl_flags_parsed() -> None:
    """grain's worker processes read absl flags; a program that never parsed them (cnnzoo's
    command line is argparse) marks them parsed with their defaults."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def first_image_size(source) -> tuple[int, int]:
    """``(width, height)`` of a source's first image (what ``data.image_size=0`` means for a
    device preset)."""
    record = source[0]
    image = image_ops.decode(record['image'], record['where'])
    return image.size


def open_stream(data, *, seed: int, image_size: int = 0, process_index: int = 0, process_count: int = 1,
                cifar_arrays=None, eval_only: bool = False) -> Stream:
    """The :class:`Stream` of a config's data section. ``image_size=0`` takes the data's own size
    (its first training image, which must be square). ``cifar_arrays`` is a loaded CIFAR
    :class:`~cnnzoo.data.Dataset` for ``data.source`` 'auto'/'archive' (streamed from memory).
    ``eval_only``: an image folder may lack its training split (the evaluation split stands in)."""
    from cnnzoo.data import sources

    data_dir = os.path.expanduser(data.data_dir) if data.data_dir else None
    stats = {}  # torchvision's ImageNet statistics unless the data brings its own
    if data.source == 'folder':
        if eval_only:
            held_out = sources.folder_eval_source(data.folder, data.eval_split)
            train = held_out
        else:
            train, held_out = sources.folder_sources(data.folder, data.train_split, data.eval_split)
        name, split = data.folder, held_out.split
    elif data.source == 'tfds':
        from cnnzoo.data.datasets import default_data_dir

        train, held_out = sources.tfds_sources(data.name, data_dir or default_data_dir(),
                                               train_split=data.train_split, eval_split=data.eval_split,
                                               manual_dir=data.manual_dir)
        name, split = data.name, held_out.split
    else:
        ds = cifar_arrays
        train = sources.ArraySource(ds.train_images, ds.train_labels, name=f'{data.name} train', classes=ds.class_names)
        held_out = sources.ArraySource(ds.test_images, ds.test_labels, name=f'{data.name} {ds.eval_split}',
                                       classes=ds.class_names)
        name, split = data.name, ds.eval_split
        stats = {'mean': ds.mean, 'std': ds.std}  # CIFAR's own, as on the device path
    if len(train) == 0 or len(held_out) == 0:
        raise DataError(f'{name}: the {"training" if len(train) == 0 else "evaluation"} split is empty')
    num_classes = getattr(train, 'num_classes', None) or len(train.classes) or int(max(train.labels)) + 1
    if not image_size:
        width, height = first_image_size(train)
        if width != height:
            raise DataError(f'{name}: images are {width}x{height}, not square; set config.data.image_size '
                            '(they are resized to it) or use config.data.augment=imagenet')
        image_size = width
    workers = default_workers() if data.workers == -1 else data.workers
    return Stream(train=train, eval=held_out, num_classes=num_classes, class_names=tuple(train.classes),
                  preset=data.augment, image_size=image_size, seed=seed, workers=workers,
                  process_index=process_index, process_count=process_count, eval_split=split, name=name,
                  **stats)
