"""How batches reach the jitted steps: the training feed and the evaluation passes.

``setup`` is a :class:`cnnzoo.run.setup.Setup`: its data is either a :class:`cnnzoo.data.Dataset` held
whole on the device, or a :class:`cnnzoo.data.streaming.Stream` read by grain.

- Training (:func:`make_feed`): ``feed.next(step)`` is the input the train step takes at ``step``
  and ``feed.batch(input, step)``, inside jit, the batch of one model made of it. On the device the
  input is the epoch's order (each replica's, stacked, in a several-seed run: the step maps
  ``feed.batch`` over them) and the step gathers the batch; streamed (one seed), it is the batch
  itself, already placed on the mesh.
  ``feed.state()`` is what a checkpoint stores of it (None on the device: the order is a function of
  the seed and the epoch).
- Evaluation (:func:`make_evaluator`, :func:`eval_logits`): every held-out example once, in padded,
  masked batches split over the mesh's ``data`` axis; every replica evaluates the same batches.
"""

from __future__ import annotations

import contextlib
import gc
import math
from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from cnnzoo import data as data_lib
from cnnzoo.run.control import stop_flags
from cnnzoo.run.mesh import place_batch, replicate, to_host
from cnnzoo.training import in_sequence, make_eval_step, over_replicas


def eval_inputs(setup, batch_size: int):
    """``(inputs, to_batch)``: ``inputs()`` iterates the evaluation split's batches as the step's
    inputs, ``to_batch(x)`` (inside jit) makes the padded, masked batch ``{'image', 'label', 'mask'}``
    of one, sharded along ``data``. Every held-out example is in exactly one batch, once."""
    ds = setup.dataset
    sharding = NamedSharding(setup.mesh, P('data'))
    if is_streamed(ds):  # the padded batches of cnnzoo.data.streaming, placed ahead of their use
        dataset = ds.eval_dataset(batch_size)
        return (lambda: ds.iterate(dataset, place=partial(place_batch, setup.mesh)),
                lambda batch: jax.lax.with_sharding_constraint(batch, sharding))
    n = len(ds.test_images)
    num_batches = math.ceil(n / batch_size)
    pad = num_batches * batch_size - n
    images = replicate(setup.mesh, np.concatenate([ds.test_images, np.zeros((pad, *ds.test_images.shape[1:]), np.uint8)]))
    labels = replicate(setup.mesh, np.concatenate([ds.test_labels, np.zeros(pad, ds.test_labels.dtype)]).astype(np.int32))
    mask = replicate(setup.mesh, np.arange(num_batches * batch_size) < n)

    def to_batch(i):
        batch = {k: jax.lax.dynamic_slice_in_dim(v, i * batch_size, batch_size)
                 for k, v in (('image', images), ('label', labels), ('mask', mask))}
        return jax.lax.with_sharding_constraint(batch, sharding)

    return (lambda: range(num_batches)), to_batch


def make_evaluator(setup, batch_size: int, loss_fn=None):
    """``evaluate(state) -> [{'loss', 'accuracy', 'count'}]``, one dict per replica of ``state``, over
    every held-out example exactly once; the loss is ``loss_fn`` per example (the run's criterion
    without label smoothing, :func:`cnnzoo.training.make_loss`; default cross-entropy)."""
    ds = setup.dataset
    preprocess = partial(_scale_and_normalize, mean=ds.mean, std=ds.std)
    eval_step = make_eval_step(preprocess=preprocess, **({'loss_fn': loss_fn} if loss_fn else {}))
    if setup.several:  # every replica evaluates the same batch
        eval_step = over_replicas(eval_step, shared=1, returns_state=False, spmd_axis_name='seeds',
                                  sequential=in_sequence(setup.mesh.shape['seeds']))
    batches, to_batch = eval_inputs(setup, batch_size)

    @jax.jit
    @chex.assert_max_traces(n=1)  # every batch padded to one shape: one compilation for every evaluation
    def eval_batch(state, x, flags):
        return {**eval_step(state, to_batch(x)), 'stop': jnp.max(flags)}

    def evaluate(state, guard=None, flags=None):
        """``guard(fn)`` runs each batch, ``flags()`` its stop flags (the loop's make a stop signal cut
        the evaluation short, :mod:`cnnzoo.run.control`)."""
        sums, no_stop = None, stop_flags(setup.mesh) if flags is None else None
        with closing(iter(batches())) as inputs:
            for x in inputs:
                run = partial(eval_batch, state, x, no_stop if flags is None else flags())
                out = guard(run) if guard else run()
                out = {k: v for k, v in out.items() if k != 'stop'}
                sums = out if sums is None else jax.tree_util.tree_map(jnp.add, sums, out)
        sums = {k: np.atleast_1d(v) for k, v in to_host(sums).items()}  # one entry per replica
        return [{'loss': float(loss) / float(count), 'accuracy': float(correct) / float(count), 'count': int(count)}
                for loss, correct, count in zip(sums['loss_sum'], sums['correct'], sums['count'], strict=True)]

    return evaluate


@contextlib.contextmanager
def closing(iterator):
    """``iterator``, closed at the end when it can be: a grain iterator's worker processes and the
    shared memory of its batches are released then (the collection frees the batches that reference
    cycles still hold), not at the interpreter's exit, where Python warns of each as leaked."""
    try:
        yield iterator
    finally:
        close = getattr(iterator, 'close', None)
        if close is not None:
            close()
            gc.collect()


def eval_logits(setup, state, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(logits (N, classes), labels (N,))`` of the state of one model over the
    evaluation split, in order, on the host (padding dropped): what a comparison of predictions
    needs beyond the evaluator's sums."""
    ds = setup.dataset
    batches, to_batch = eval_inputs(setup, batch_size)

    @jax.jit
    def apply(state, x):
        batch = to_batch(x)
        images = _scale_and_normalize(batch['image'], mean=ds.mean, std=ds.std)
        return state.apply_fn(state.variables(), images, train=False), batch['label'], batch['mask']

    with closing(iter(batches())) as inputs:
        out = [to_host(apply(state, x)) for x in inputs]
    logits, labels, mask = (np.concatenate([o[k] for o in out]) for k in range(3))
    return logits[mask], labels[mask]


def _scale_and_normalize(images, *, mean, std):
    return data_lib.normalize(images.astype(jnp.float32) / 255.0, mean, std)


def is_streamed(data) -> bool:
    """Whether a run's data is streamed (grain) rather than held whole on the device."""
    return not isinstance(data, data_lib.Dataset)


class DeviceFeed:
    """Training batches from the set held on the device: the step's input is the epoch's order (each
    replica's), and the step gathers its batch (``data.take_batch``) inside jit. Nothing to checkpoint."""

    def __init__(self, config, setup):
        ds = setup.dataset
        self.spe, self.batch_size = setup.steps_per_epoch, config.training.batch_size
        self.images = replicate(setup.mesh, ds.train_images)
        self.labels = replicate(setup.mesh, ds.train_labels.astype(np.int32))
        self.seeds, self.num_train = setup.seeds, len(ds.train_images)
        self.perms, self.perm_epoch = None, None

    def next(self, step: int):
        """The input of step ``step``: the order of the step's epoch (several seeds: each replica's,
        stacked; replica k's is the order of the run with its seed)."""
        epoch = step // self.spe
        if epoch != self.perm_epoch:
            perms = [data_lib.epoch_permutation(seed, epoch, self.num_train) for seed in self.seeds]
            self.perms = perms[0] if len(perms) == 1 else jnp.stack(perms)
            self.perm_epoch = epoch
        return self.perms

    def batch(self, perm, step):
        """Inside jit: the batch of ``step`` of one model, from its epoch's order."""
        return data_lib.take_batch(self.images, self.labels, perm, step % self.spe, self.batch_size)

    def state(self):
        """Nothing to keep: the order is the step's and the seed's."""

    def close(self):
        """Nothing to release: the arrays go with the feed."""


class StreamFeed:
    """Training batches streamed by grain (cnnzoo.data.streaming), placed on the mesh ahead of the
    step; the iterator's state goes into each checkpoint."""

    def __init__(self, config, setup, start_step: int, saved: dict | None):
        self.batches = setup.dataset.train_iterator(config.training.batch_size, start=start_step, saved=saved,
                                                    place=partial(place_batch, setup.mesh, keys=('image', 'label')))

    def next(self, step: int):
        """The next batch, already on the mesh (the streamed order does not depend on ``step``)."""
        return next(self.batches)

    def batch(self, batch, step):
        """Inside jit: the batch itself (a streamed run trains one seed)."""
        return batch

    def state(self):
        """The iterator's state, for the checkpoint."""
        return self.batches.state()

    def close(self):
        """Stops the workers and releases the batches' shared memory."""
        self.batches.close()
        gc.collect()  # as in closing(): release the batches' shared memory now


def make_feed(config, setup, start_step: int, saved: dict | None):
    """The training feed of a run: streamed (``saved``: the data state of the checkpoint restored at
    ``start_step``, or None) or held on the device."""
    if is_streamed(setup.dataset):
        return StreamFeed(config, setup, start_step, saved)
    return DeviceFeed(config, setup)
