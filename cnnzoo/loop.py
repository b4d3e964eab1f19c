"""The one training loop: steps, evaluation, metrics, checkpoints and preemption.

Exact resume: the state (params, batch_stats, optimizer state, step) is checkpointed with orbax;
each epoch's order is ``epoch_permutation(seed, epoch)``, and each step's random numbers come from
``fold_in(key(seed), step)``. A run killed at any moment (even SIGKILL) and started again with the
same command restores the latest checkpoint and continues on the same trajectory: on CPU the final
parameters are bitwise those of a run never interrupted, and ``metrics.jsonl`` (and TensorBoard)
hold record for record what the uninterrupted run's hold. SIGTERM and SIGINT finish the current
step, save a checkpoint and return; during the first step's compilation or an evaluation they
return within a fraction of a second, the last checkpoint intact (an evaluation cut short is run
again when the run resumes).

Several devices and processes: the state is replicated over a one-axis ``data`` mesh of every
device of every process and each batch is split along it, so BatchNorm's statistics and the gradient
are those of the global batch, as in a one-device run (the same step up to the order of float sums:
tests/test_scale.py). Each process holds the dataset and places on its own devices only their
copies (``jax.make_array_from_callback``); every process evaluates the same sharded batches, so each
held-out example counts once. Process 0 alone writes ``config.json``, ``metrics.jsonl``, TensorBoard
and the progress lines and holds the workdir lock; orbax saves and restores the checkpoints with all
processes taking part. A stop signal stops every process at the same step (they agree at each step).

Several seeds in one program (``training.num_seeds=K``): the state holds K replicas stacked on a
leading axis (the step is shared) and the step is ``jax.vmap``-ed over them
(:func:`cnnzoo.training.over_replicas`). Replica k initialises, orders the data and draws its
augmentation exactly as the run with seed ``seed + k`` does; its metrics, TensorBoard events, best
checkpoint and a one-seed ``config.json`` go to ``<workdir>/seed<seed + k>/``, which every reader of
a one-seed workdir reads unchanged; the checkpoints to resume from are the whole state's, in
``<workdir>/checkpoints/``. The mesh is ``seeds`` x ``data``: ``training.seed_devices`` devices
along the replica axis (1 unless set), the batch split over the rest.

Side effects live here and only here: the train and eval steps (cnnzoo.training) are pure.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from cnnzoo import data as data_lib
from cnnzoo.checkpoints import Checkpoints
from cnnzoo.distributed import is_primary
from cnnzoo.feeds import is_streamed, make_evaluator, make_feed
from cnnzoo.mesh import make_mesh, place, replicate, to_host
from cnnzoo.models import create_model
from cnnzoo.progress import Progress, Throughput, format_duration
from cnnzoo.training import (TrainState, init_variables, make_optimizer,
                             make_schedule, make_train_step, over_replicas, replica, steps_from_epochs)
from cnnzoo.config import CIFAR_NAMES, data_loader
from cnnzoo.validation import check_against_data, check_config, stream_image_size
from cnnzoo.workdir import (MetricsLog, RunError, WorkdirLock, has_checkpoint, provisional_files,
                             write_or_check_config)

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


@dataclasses.dataclass
class Setup:
    """What a run is made of, built the same way for training and for evaluation."""

    dataset: data_lib.Dataset
    model: object
    state: TrainState
    steps_per_epoch: int
    total_steps: int
    learning_rate_fn: object
    mesh: jax.sharding.Mesh
    replicas: int = 1  # training.num_seeds: the state holds this many replicas (over_replicas)


def build(config, *, dataset: data_lib.Dataset | None = None, initial_weights: bool = True,
          training: bool = True) -> Setup:
    """Data, model, schedule and the initial state of ``config``.

    ``initial_weights=False`` skips ``config.init.torch_checkpoint``: a state about to be replaced by
    a restored checkpoint (resume, evaluation) needs neither the file nor the time to convert it.
    ``training=False`` (an evaluation): a streamed image folder needs only its evaluation split, and
    the training set's size is not checked against the run's length.
    """
    dataset = dataset or open_data(config, training=training)
    if config.data.augment_mode == 'expand':
        dataset = data_lib.expand_dataset(dataset, config.data.augment, config.seed)
    fields = {k: v for k, v in config.model.items() if k != 'name'}
    model = create_model(config.model.name, num_classes=dataset.num_classes,
                         dtype=DTYPES[config.training.dtype], **fields)

    batch_size = config.training.batch_size
    steps_per_epoch = dataset.num_train // batch_size if training else max(1, dataset.num_train // batch_size)
    if steps_per_epoch == 0:
        raise RunError(f'batch size {batch_size} is larger than the training set ({dataset.num_train} images)')
    t = config.training
    total_steps = t.num_steps if t.num_steps > 0 else steps_from_epochs(t.num_epochs, steps_per_epoch)
    if training:
        check_against_data(config, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    learning_rate_fn = make_schedule(config, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    tx = make_optimizer(config.optimizer, learning_rate_fn)

    mesh = make_mesh(t.seed_devices)
    if batch_size % mesh.shape['data'] or t.eval_batch_size % mesh.shape['data']:
        raise RunError(f'batch sizes must divide evenly over {mesh.shape["data"]} devices')
    shape = dataset.image_shape
    if t.num_seeds == 1:
        variables = init_variables(model, init_key(config.seed), shape)
        if initial_weights and config.init.torch_checkpoint:
            variables = _variables_from_torch(config, model, variables)
        state = TrainState.create(apply_fn=model.apply, variables=variables, tx=tx)
    else:  # replica k: the initialisation of seed + k
        def create(key):
            return TrainState.create(apply_fn=model.apply, variables=init_variables(model, key, shape, jit=False),
                                     tx=tx)

        keys = jnp.stack([init_key(seed) for seed in replica_seeds(config)])
        state = jax.jit(jax.vmap(create))(keys).replace(step=jnp.zeros((), jnp.int32))
    if t.num_seeds == 1:
        state = jax.tree_util.tree_map(lambda x: replicate(mesh, x), state)
    else:  # the replica axis over the mesh's 'seeds' axis (of size 1 unless training.seed_devices says)
        spread = lambda tree: jax.tree_util.tree_map(lambda x: place(mesh, x, P('seeds')), tree)  # noqa: E731
        state = state.replace(step=replicate(mesh, state.step), params=spread(state.params),
                              batch_stats=spread(state.batch_stats), opt_state=spread(state.opt_state))
    return Setup(dataset, model, state, steps_per_epoch, total_steps, learning_rate_fn, mesh, t.num_seeds)


def open_data(config, *, training: bool = True):
    """The data of ``config``: a :class:`cnnzoo.data.Dataset` held whole on the device, or, with
    ``data.loader`` resolving to 'grain', a :class:`cnnzoo.data.streaming.Stream` of this process's
    share (``training=False``: of an image folder, the evaluation split alone is needed)."""
    d = config.data
    cifar = None
    if d.source in ('auto', 'archive', 'tfds') and d.name in CIFAR_NAMES and (
            data_loader(d) == 'device' or d.source != 'tfds'):
        cifar = data_lib.load_dataset(d.name, source=d.source, archive=_path(d.archive), data_dir=_path(d.data_dir),
                                      validation_size=d.validation_size, seed=config.seed)
        if data_loader(d) == 'device':
            return cifar
    from cnnzoo.data.streaming import open_stream

    return open_stream(d, seed=config.seed, image_size=stream_image_size(config), cifar_arrays=cifar,
                       process_index=jax.process_index(), process_count=jax.process_count(),
                       eval_only=not training)


def init_key(seed: int):
    """The key of a run's initialisation (the data order folds in 2, the per-step randomness 1)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), 0)


def replica_seeds(config) -> list[int]:
    """The seeds of a run's replicas: ``seed, seed + 1, ..., seed + num_seeds - 1``."""
    return [config.seed + k for k in range(config.training.num_seeds)]


def replica_dirs(config, workdir: str) -> list[str]:
    """Where each replica's records go: the workdir itself for one seed, else ``seed<N>/`` in it."""
    if config.training.num_seeds == 1:
        return [workdir]
    return [os.path.join(workdir, f'seed{seed}') for seed in replica_seeds(config)]


def _variables_from_torch(config, model, variables):
    """``variables`` overwritten by ``config.init.torch_checkpoint`` (a PyTorch state_dict file)."""
    from cnnzoo.torch.convert import (
        ConversionError,
        init_from_state_dict,
        load_torch_checkpoint,
    )

    try:
        state_dict = load_torch_checkpoint(_path(config.init.torch_checkpoint))
        return init_from_state_dict(variables, state_dict, model, reset_head=config.init.reset_head)
    except ConversionError as e:
        raise RunError(f'config.init.torch_checkpoint: {e}') from e


def step_stream(seed: int):
    """The key of a run's per-step randomness; step ``s`` draws from ``fold_in(step_stream(seed), s)``.

    (The initialisation folds 0 into the seed's key, the data order 2: ``data.epoch_permutation``.)
    """
    return jax.random.fold_in(jax.random.PRNGKey(seed), 1)


def _path(text: str) -> str | None:
    return os.path.expanduser(text) if text else None


class _StopSignals:
    """SIGTERM/SIGINT set a flag; the loop saves and returns at the next step boundary, or within a
    fraction of a second when it is waiting on a compilation or an evaluation (:func:`_interruptible`)."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name
        signal.signal(signum, self._previous[signum])  # a second signal acts as usual

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _Stopped(Exception):
    """A stop signal arrived while :func:`_interruptible` was waiting."""


def _interruptible(fn, signals: _StopSignals):
    """``fn()``, run in a helper thread so that the main thread, where Python runs signal handlers,
    stays responsive: a compilation or an evaluation batch can take tens of seconds, and a stop
    signal must not wait for it. Raises :class:`_Stopped` when a signal arrives first (``fn`` is then
    abandoned: its result is never used, and the process is about to end)."""
    result = {}

    def work():
        try:
            result['value'] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            result['error'] = e

    worker = threading.Thread(target=work, daemon=True, name='cnnzoo-step')
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
        if signals.received and worker.is_alive():
            atexit.register(_exit_before_worker_is_torn_down, worker, signals.received)
            raise _Stopped(signals.received)
    if 'error' in result:
        raise result['error']
    return result['value']


def _exit_before_worker_is_torn_down(worker: threading.Thread, signal_name: str) -> None:
    """At interpreter exit, a thread still inside XLA (an abandoned compilation) aborts the process
    when Python tears it down. Ending the process first, with the status a stop signal gives
    (128 + its number), is the clean exit: every file of the run was closed before."""
    if worker.is_alive():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signal.Signals[signal_name].value)


def train_and_evaluate(config, workdir: str, *, extend: bool = False) -> dict:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint; returns a summary.

    The config is checked whole first (:func:`cnnzoo.validation.check_config`): a bad value is a
    one-line ConfigError before anything is read or written. A start that fails before its first
    checkpoint leaves ``workdir`` as it found it (:func:`cnnzoo.workdir.provisional_files`).
    ``extend=True`` lets a run go on with a longer ``training.num_steps``/``num_epochs`` than it was
    started with (see the README, "Continue a finished run"). ``summary['stopped_by']`` names the
    signal when SIGTERM/SIGINT stopped the run (after saving a checkpoint).
    """
    check_config(config)
    if config.training.compilation_cache:
        use_compilation_cache()
    if not is_primary():  # process 0 guards and binds the workdir; the others train beside it
        with _StopSignals() as signals:
            write_or_check_config(workdir, config, extend=extend, write=False)  # refuse what process 0 refuses
            return _train(config, workdir, signals)
    with _StopSignals() as signals, provisional_files(workdir):
        lock = WorkdirLock(workdir).acquire()
        try:
            write_or_check_config(workdir, config, extend=extend)
            return _train(config, workdir, signals)
        finally:
            lock.release()


def compilation_cache_dir() -> str:
    """Where :func:`use_compilation_cache` keeps compiled programs when JAX has no directory set."""
    cache_home = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(cache_home, 'cnnzoo', 'jax')


def use_compilation_cache() -> None:
    """Turns on JAX's persistent compilation cache for this process (``config.training.compilation_cache``).

    A directory already configured (``$JAX_COMPILATION_CACHE_DIR``, ``jax.config``) is kept; else
    :func:`compilation_cache_dir`. JAX stores only programs that took over a second to compile, keyed
    by the program, the devices and the JAX/XLA versions; a hit is the same executable a compilation
    would give, so a resumed run stays on its trajectory bit for bit.
    """
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update('jax_compilation_cache_dir', compilation_cache_dir())


def _train(config, workdir: str, signals: _StopSignals) -> dict:
    progress = Progress(0, bar=config.training.progress_bar,
                        stream=None if is_primary() else open(os.devnull, 'w'))  # noqa: SIM115
    started = time.perf_counter()
    setup = build(config, initial_weights=not has_checkpoint(workdir))
    progress.total = setup.total_steps
    with contextlib.ExitStack() as closing:
        ckpts = Checkpoints(workdir, keep=config.training.keep_checkpoints, data=is_streamed(setup.dataset))
        closing.callback(ckpts.close)
        state = ckpts.restore(setup.state, 'latest')
        if state is None and os.path.isdir(os.path.join(workdir, 'damaged')):
            raise RunError(f'no checkpoint in {workdir}/checkpoints can be restored (each was moved to '
                           f'{workdir}/damaged); to start the run over, choose another --workdir')
        state = state or setup.state
        if int(state.step) > setup.total_steps:
            raise RunError(f'{workdir} is at step {int(state.step)}, past the {setup.total_steps} steps of '
                           'this config')
        logs, bests = [], []
        for seed, directory in zip(replica_seeds(config), replica_dirs(config, workdir), strict=True):
            if directory != workdir:  # a replica's own one-seed workdir
                if is_primary():
                    os.makedirs(directory, exist_ok=True)
                    write_or_check_config(directory, _one_seed_config(config, seed))
                bests.append(Checkpoints(directory, keep=1))
                closing.callback(bests[-1].close)
            logs.append(MetricsLog(directory, resume_step=int(state.step), write=is_primary()))
            closing.callback(logs[-1].close)
        feed = make_feed(config, setup, replica_seeds(config), int(state.step), ckpts.restored_data)
        closing.callback(feed.close)
        return _loop(config, workdir, setup, state, ckpts, bests or [ckpts], progress, signals, started, logs, feed)


def _one_seed_config(config, seed: int):
    """The config of the one-seed run that replica ``seed`` is (what its ``config.json`` says)."""
    from cnnzoo.config import from_json, to_json

    one = from_json(to_json(config))
    one.seed = seed
    one.training.num_seeds = 1
    return one


def _loop(config, workdir, setup, state, ckpts, bests, progress, signals, started, logs, feed) -> dict:
    t = config.training
    ds, spe, total = setup.dataset, setup.steps_per_epoch, setup.total_steps
    seeds = replica_seeds(config)
    several = len(seeds) > 1
    start_step = int(state.step)
    best_accuracy = [log.best_eval_accuracy() for log in logs]
    source = config.data.folder if config.data.source == 'folder' else config.data.name
    progress.message(
        f'{config.model.name} on {source}: {ds.num_train} train'
        + (f' (expanded by {config.data.augment})' if config.data.augment_mode == 'expand' else '')
        + f' / {ds.num_eval} '
        f'{ds.eval_split} images'
        + (f' of {ds.image_size}x{ds.image_size} streamed by {ds.workers} worker(s)' if is_streamed(ds) else '')
        + f', batch {t.batch_size}, {spe} steps/epoch, {total} steps, '
        f'{jax.device_count()} {jax.devices()[0].platform} device(s)'
        + (f', {len(seeds)} seeds in one program ({workdir}/seed{seeds[0]}..seed{seeds[-1]})' if several else '')
        + (f'; resuming at step {start_step}' if start_step else ''))

    preset = data_lib.online_preset(config.data)

    def preprocess(rng, images):
        return data_lib.normalize(data_lib.augment(rng, images, preset, mean=ds.mean), ds.mean, ds.std)

    train_step = make_train_step(preprocess=preprocess, learning_rate_fn=setup.learning_rate_fn,
                                 label_smoothing=t.label_smoothing)
    if several:  # replica k: the batches and random numbers of the run with seed + k
        train_step = over_replicas(train_step)
        batch_sharding = NamedSharding(setup.mesh, P('seeds', 'data'))
        keys = jnp.stack([step_stream(seed) for seed in seeds])
        step_rng = jax.vmap(jax.random.fold_in, in_axes=(0, None))
    else:
        batch_sharding = NamedSharding(setup.mesh, P('data'))
        keys = step_stream(config.seed)
        step_rng = jax.random.fold_in

    @partial(jax.jit, donate_argnums=0)
    def step_fn(state, feed_input):
        batch = jax.lax.with_sharding_constraint(feed.batch(feed_input, state.step), batch_sharding)
        return train_step(state, batch, step_rng(keys, state.step))

    evaluate = make_evaluator(setup, t.eval_batch_size)
    eval_every = max(1, steps_from_epochs(t.eval_every_epochs, spe))
    guard = partial(_interruptible, signals=signals)

    def run_eval(state, step):
        """Evaluates and records; None when a stop signal cut the evaluation short."""
        try:
            results = evaluate(state, guard=guard)
        except _Stopped:
            return None
        results = results if several else [results]
        records = [{'step': step, 'split': ds.eval_split, 'epoch': step / spe,
                    'loss': r['loss'], 'accuracy': r['accuracy']} for r in results]
        for k, (record, log) in enumerate(zip(records, logs, strict=True)):
            if log.eval_at(step) is None:  # a resumed replica may have it already
                log.write(record)
            if record['accuracy'] > best_accuracy[k]:
                best_accuracy[k] = record['accuracy']
                bests[k].save_best(replica(state, k) if several else state, record['accuracy'])
        accuracies = ' '.join(f'{r["accuracy"]:.4f}' for r in results)
        progress.message(f'eval step {step} ({ds.eval_split}): '
                         + (f'loss {results[0]["loss"]:.4f} ' if not several else '')
                         + f'accuracy {accuracies}' + (f' (seeds {seeds[0]}..{seeds[-1]})' if several else '')
                         + f' on {results[0]["count"]} images')
        return records

    def due_eval(step):
        return step % eval_every == 0 or step == total

    step = start_step
    # The evaluation of the restored step, when it was due and never written (a stop during it).
    last_eval = [log.eval_at(step) for log in logs] if step else None
    if step and None in last_eval and due_eval(step) and not signals.received:
        last_eval = run_eval(state, step)

    pending = []
    stop = _agreed_stop if jax.process_count() > 1 else (lambda received: received)
    stopped_by = stop(signals.received)
    timed_step, timed_since = step, time.perf_counter()
    throughput = Throughput()
    train_seconds, train_images_seen = 0.0, 0
    while step < total and not stopped_by:
        if step == start_step:  # the first step compiles: interruptible, and timed apart
            try:
                state, metrics = guard(lambda: step_fn(state, feed.next(step)))
            except _Stopped:
                stopped_by = signals.received
                break  # nothing new to save: the state is the restored (or initial) one
            step += 1
            pending.append(metrics)
            _check_finite(to_host(pending), step, ckpts, seeds)
            progress.message(f'compiled and ran the first step in {time.perf_counter() - started:.1f}s '
                             '(start-up included)')
            throughput.reset(step)
            timed_step, timed_since = step, time.perf_counter()
        else:
            state, metrics = step_fn(state, feed.next(step))
            step += 1
            pending.append(metrics)
        at_eval = due_eval(step)
        at_ckpt = step % t.checkpoint_every_steps == 0 or step == total
        at_log = step % t.log_every_steps == 0
        stopped_by = stop(signals.received)
        if not (at_log or at_eval or at_ckpt or stopped_by):
            continue
        host = to_host(pending)
        _check_finite(host, step, ckpts, seeds)
        pending = []
        now = time.perf_counter()
        train_seconds += now - timed_since
        train_images_seen += (step - timed_step) * t.batch_size * len(seeds)
        timed_step, timed_since = step, now
        if at_log and host:
            rate = throughput.rate(step, t.batch_size) or None  # None: only the compiling step so far
            records = [{'step': step, 'split': 'train', 'epoch': step / spe,
                        'loss': float(np.mean([np.atleast_1d(m['loss'])[k] for m in host])),
                        'accuracy': float(np.mean([np.atleast_1d(m['accuracy'])[k] for m in host])),
                        'learning_rate': float(np.atleast_1d(host[-1]['learning_rate'])[k]), 'images_per_sec': rate}
                       for k in range(len(seeds))]
            for record, log in zip(records, logs, strict=True):
                log.write(record)
            eta = (total - step) * t.batch_size / rate if rate else None
            progress.update(step, epoch=step / spe, loss=float(np.mean([r['loss'] for r in records])),
                            accuracy=float(np.mean([r['accuracy'] for r in records])),
                            learning_rate=records[0]['learning_rate'],
                            images_per_sec=rate and rate * len(seeds), eta_seconds=eta)
        if at_eval and not stopped_by:
            records = run_eval(state, step)
            last_eval = records or last_eval
            stopped_by = stop(signals.received)
        if at_ckpt or stopped_by:
            ckpts.save(state, force=True, data=feed.state())
        throughput.reset(step)
        timed_step, timed_since = step, time.perf_counter()
    ckpts.wait()
    for best in bests:
        best.wait()
    wall = time.perf_counter() - started
    best_of = [a if a >= 0 else None for a in best_accuracy]
    finals = last_eval or [None] * len(seeds)
    summary = {'step': step, 'total_steps': total, 'stopped_by': stopped_by, 'wall_seconds': wall,
               'train_images_per_sec': train_images_seen / train_seconds if train_seconds else None,
               'best_accuracy': best_of[0], 'final': finals[0],
               'evals': [r for r in logs[0].records if r.get('split') != 'train'],
               'state': state}
    if several:  # the first replica's figures above; every replica's here
        summary['replicas'] = [{'seed': seed, 'directory': directory, 'final': final, 'best_accuracy': best}
                               for seed, directory, final, best in zip(seeds, replica_dirs(config, workdir),
                                                                       finals, best_of, strict=True)]
    if stopped_by:
        kept = ckpts.latest_step()
        progress.message(f'stopped by {stopped_by} at step {step}; '
                         + (f'checkpoint of step {kept} in {workdir}. ' if kept is not None else
                            'no checkpoint yet, the run starts over. ')
                         + 'Run the same command to resume.')
    else:
        accuracies = ' '.join(f'{r["accuracy"]:.4f}' for r in finals)
        bests_text = ' '.join(f'{b:.4f}' for b in best_of)
        progress.message(f'done: step {step}, {ds.eval_split} accuracy {accuracies} (best {bests_text})'
                         + (f' for seeds {seeds[0]}..{seeds[-1]}' if several else '')
                         + f', wall {format_duration(wall)}'
                         + (f', {summary["train_images_per_sec"]:.0f} train img/s'
                            if summary['train_images_per_sec'] else ''))
    return summary


def _agreed_stop(received: str | None) -> str | None:
    """The stop signal any process of a multi-process run has received, in every process: each
    step's boundary is where they agree, so all of them save the same step and stop together."""
    from jax.experimental import multihost_utils

    numbers = multihost_utils.process_allgather(np.int32(signal.Signals[received].value if received else 0))
    first = int(np.max(numbers))
    return signal.Signals(first).name if first else None


def _check_finite(host_metrics, step: int, ckpts: Checkpoints, seeds: list[int]) -> None:
    """Raises a one-line RunError naming the first step (and seed) whose loss is NaN or infinite."""
    first = step - len(host_metrics) + 1
    for i, m in enumerate(host_metrics):
        losses = np.atleast_1d(m['loss'])
        if not np.all(np.isfinite(losses)):
            k = int(np.argmin(np.isfinite(losses)))
            ckpts.wait()
            last = ckpts.latest_step()
            kept = f'last good checkpoint: step {last}' if last is not None else 'no checkpoint was saved'
            which = f' (seed {seeds[k]})' if len(seeds) > 1 else ''
            raise RunError(f'loss is {float(losses[k])} at step {first + i}{which}; stopping ({kept})')
