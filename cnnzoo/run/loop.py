"""The one training loop: steps, evaluation, metrics, checkpoints and preemption.

Exact resume: the state (params, batch_stats, optimizer state, step) is checkpointed with orbax;
each epoch's order is ``epoch_permutation(seed, epoch)``, and each step's random numbers come from
``fold_in(step_stream(seed), step)`` (:mod:`cnnzoo.training.rngs`). A run killed at any moment (even
SIGKILL) and started again with the same command restores the latest checkpoint and continues on
the same trajectory: on CPU the final parameters are bitwise those of a run never interrupted, and
``metrics.jsonl`` (and TensorBoard) hold record for record what the uninterrupted run's hold.

Stopping: SIGTERM and SIGINT end the run at the next step boundary with a checkpoint. At most two
steps are in flight (the loop waits for the step before the last before it goes on), so a stop waits
for at most two steps, whatever the model and device; during the first step's compilation or an
evaluation a stop returns within a fraction of a second, the last checkpoint intact (an evaluation
cut short is run again when the run resumes).

Several devices and processes: the state is copied over the ``data`` axis of a mesh of every device
of every process and each batch is split along it, so BatchNorm's statistics and the gradient are
those of the global batch, as in a one-device run (the same step up to the order of float sums:
tests/test_scale.py). Each process holds the dataset and places on its own devices only their
copies (``jax.make_array_from_callback``); every process evaluates the same sharded batches, so each
held-out example counts once. Process 0 alone writes ``config.json``, ``metrics.jsonl``, TensorBoard
and the progress lines and holds the workdir lock; orbax saves and restores the checkpoints with all
processes taking part. A stop signal stops every process at the same step (they agree at each step).

Seeds: the state holds one replica per seed on a leading axis (``training.num_seeds``, 1 unless set)
and the step is mapped over them (:func:`cnnzoo.training.over_replicas`); replica k initialises,
orders the data and draws its augmentation exactly as the run with seed ``seed + k`` does, and is
recorded as that run would be (:mod:`cnnzoo.run.recorder`). The mesh is ``seeds`` x ``data``:
``training.seed_devices`` devices along the replica axis, the batch split over the rest.

Side effects live here and only here: the train and eval steps (cnnzoo.training) are pure.
"""

from __future__ import annotations

import contextlib
import os
import time
from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from cnnzoo import data as data_lib
from cnnzoo.data.resolver import data_label
from cnnzoo.errors import RunError
from cnnzoo.run.checkpoints import Checkpoints
from cnnzoo.run.distributed import is_primary
from cnnzoo.run.feeds import is_streamed, make_evaluator, make_feed
from cnnzoo.run.mesh import to_host
from cnnzoo.run.progress import Progress, StepTimer, format_duration
from cnnzoo.run.recorder import Recorder
from cnnzoo.run.setup import build, use_compilation_cache
from cnnzoo.run.signals import StopSignals, Stopped, agreed_stop, interruptible
from cnnzoo.run.supervise import beat
from cnnzoo.run.validation import check_config
from cnnzoo.run.workdir import WorkdirLock, has_checkpoint, provisional_files, write_or_check_config
from cnnzoo.training import make_train_step, over_replicas, step_stream, steps_from_epochs

# The timed steps after the compiling one that the early estimate of the run's length is made from.
ESTIMATE_STEPS = 5

# The most steps dispatched and not yet finished: what a stop signal waits for at worst.
MAX_STEPS_IN_FLIGHT = 2


class InFlight:
    """The outputs of the steps dispatched since the last look at the host, with at most ``limit``
    of them unfinished: JAX dispatches asynchronously, and a loop that never waits runs ahead of the
    device by as many steps as its queue takes (dozens on CPU), each of which a stop signal then
    waits for. :meth:`add` blocks on the step ``limit - 1`` places back before it returns, so a stop
    seen at the next boundary waits for at most ``limit`` steps. The device stays busy: the step
    before the last is waited for while the last one is already queued."""

    def __init__(self, limit: int = MAX_STEPS_IN_FLIGHT, wait=jax.block_until_ready):
        if limit < 1:
            raise ValueError(f'limit {limit}: at least one step must be allowed in flight')
        self.limit, self._wait, self._pending = limit, wait, []

    def add(self, outputs) -> None:
        """Records a dispatched step's outputs; returns once at most ``limit`` steps are unfinished."""
        self._pending.append(outputs)
        if len(self._pending) >= self.limit:
            self._wait(self._pending[-self.limit])

    def take(self) -> list:
        """The outputs recorded since the last call, oldest first (still on the device)."""
        taken, self._pending = self._pending, []
        return taken


def train_and_evaluate(config, workdir: str, *, extend: bool = False) -> dict:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint; returns a summary.

    The config is checked whole first (:func:`cnnzoo.run.validation.check_config`): a bad value is a
    one-line ConfigError before anything is read or written. A start that fails before its first
    checkpoint leaves the disk as it found it (:func:`cnnzoo.run.workdir.provisional_files`).
    ``extend=True`` lets a run go on with a longer ``training.num_steps``/``num_epochs`` than it was
    started with (see the README, "Continue a finished run"). ``summary['stopped_by']`` names the
    signal when SIGTERM/SIGINT stopped the run (after saving a checkpoint).
    """
    check_config(config)
    if config.training.compilation_cache:
        use_compilation_cache()
    with StopSignals() as signals, _claimed(workdir, config, extend=extend):
        return _train(config, workdir, signals)


@contextlib.contextmanager
def _claimed(workdir: str, config, *, extend: bool):
    """Process 0 locks the workdir and writes (or checks) its ``config.json``, undoing a start that
    fails; the other processes of a multi-process run refuse what process 0 refuses, and write nothing."""
    if not is_primary():
        write_or_check_config(workdir, config, extend=extend, write=False)
        yield
        return
    with provisional_files(workdir):
        lock = WorkdirLock(workdir).acquire()
        try:
            write_or_check_config(workdir, config, extend=extend)
            yield
        finally:
            lock.release()


def _train(config, workdir: str, signals: StopSignals) -> dict:
    """Sets the run up, then steps; at the steps due, a record, an evaluation, a checkpoint."""
    started = time.perf_counter()
    chex.clear_trace_counter()  # the step functions are a run's own: count their traces per run
    t = config.training
    progress = Progress(0, bar=t.progress_bar, stream=None if is_primary() else open(os.devnull, 'w'))  # noqa: SIM115
    setup = build(config, initial_weights=not has_checkpoint(workdir))
    total = progress.total = setup.total_steps
    with contextlib.ExitStack() as stack:
        ckpts = stack.enter_context(Checkpoints(workdir, keep=t.keep_checkpoints))
        state = _restore(ckpts, setup, workdir)
        step = start = int(state.step)
        record = stack.enter_context(Recorder(config, workdir, setup, start_step=start, ckpts=ckpts,
                                              progress=progress))
        record.restore_window(ckpts.restored_records)
        feed = stack.enter_context(contextlib.closing(make_feed(config, setup, start, ckpts.restored_data)))
        train_step = _train_step(config, setup, feed)
        evaluate = make_evaluator(setup, t.eval_batch_size)

        def guard(fn):
            """``fn()`` interruptible by a stop signal; then a beat to a supervising parent (the run moved on)."""
            out = interruptible(fn, signals)
            beat()
            return out

        stop = agreed_stop if jax.process_count() > 1 else (lambda received: received)
        eval_every = max(1, steps_from_epochs(t.eval_every_epochs, setup.steps_per_epoch))
        progress.message(_describe(config, workdir, setup, start))

        def run_eval(state, step) -> None:
            """Evaluates and records; a stop signal cuts it short (it is run again on resume)."""
            with contextlib.suppress(Stopped):
                record.evaluation(step, evaluate(state, guard=guard), state)

        if start and (start % eval_every == 0 or start == total) and record.needs_eval(start) and not signals.received:
            run_eval(state, start)  # the evaluation a stop cut short, of the restored step
        in_flight, timer = InFlight(), StepTimer(t.batch_size)  # images/s per replica, as the records report it
        stopped_by = stop(signals.received)
        while step < total and not stopped_by:
            if step == start:  # the first step compiles: interruptible, and timed apart
                try:
                    state, metrics = guard(lambda: train_step(state, feed.next(step)))
                except Stopped:
                    stopped_by = signals.received
                    break  # nothing new to save: the state is the restored (or initial) one
                _check_finite(to_host([metrics]), step + 1, ckpts, setup.seeds)
                progress.message(f'compiled and ran the first step in {time.perf_counter() - started:.1f}s '
                                 '(start-up included)')
                timer.restart(step + 1)
            else:
                state, metrics = train_step(state, feed.next(step))
            step += 1
            in_flight.add(metrics)  # at most two steps unfinished: a stop never waits for more
            beat()  # the step before the last has finished (cnnzoo.run.supervise hears it)
            at_log, at_ckpt = step % t.log_every_steps == 0, step % t.checkpoint_every_steps == 0 or step == total
            at_eval = step % eval_every == 0 or step == total
            at_estimate = step == start + 1 + ESTIMATE_STEPS and step < total
            stopped_by = stop(signals.received)
            if not (at_log or at_eval or at_ckpt or at_estimate or stopped_by):
                continue
            host = to_host(in_flight.take())
            _check_finite(host, step, ckpts, setup.seeds)
            record.add(host)
            timer.stop(step)
            if at_estimate:
                progress.message(_estimate(timer, step, total, t.batch_size))
            if at_log:
                rate = timer.window_rate()
                record.log(step, rate, eta_seconds=(total - step) * t.batch_size / rate if rate else None)
            if at_eval and not stopped_by:
                run_eval(state, step)
                stopped_by = stop(signals.received)
            if at_ckpt or stopped_by:
                ckpts.save(state, force=True, records=record.window_state(), data=feed.state())
                beat()
            timer.restart(step)
        ckpts.wait()
        rate = timer.total_rate()
        summary = record.summary(step=step, total=total, stopped_by=stopped_by, wall=time.perf_counter() - started,
                                 train_images_per_sec=rate and rate * len(setup.seeds), state=state)
        if stopped_by:
            kept = ckpts.latest_step()
            progress.message(f'stopped by {stopped_by} at step {step}; '
                             + (f'checkpoint of step {kept} in {workdir}. ' if kept is not None else
                                'no checkpoint yet, the run starts over. ')
                             + 'Run the same command to resume.')
        else:
            record.done(summary, setup.dataset.eval_split)
    return summary


def _restore(ckpts: Checkpoints, setup, workdir: str):
    """The state to start from: the latest restorable checkpoint's, else the initial one."""
    state = ckpts.restore(setup.state, 'latest')
    if state is None and os.path.isdir(os.path.join(workdir, 'damaged')):
        raise RunError(f'no checkpoint in {workdir}/checkpoints can be restored (each was moved to '
                       f'{workdir}/damaged); to start the run over, choose another --workdir')
    state = state or setup.state
    if int(state.step) > setup.total_steps:
        raise RunError(f'{workdir} is at step {int(state.step)}, past the {setup.total_steps} steps of this config')
    return state


def _train_step(config, setup, feed):
    """The jitted step, ``(state, feed input) -> (state, metrics)``: each replica's batch and random
    numbers those of its seed's run; the state's buffers are donated (updated in place)."""
    ds = setup.dataset
    preset = data_lib.online_preset(config.data)

    def preprocess(rng, images):
        return data_lib.normalize(data_lib.augment(rng, images, preset, mean=ds.mean), ds.mean, ds.std)

    step = over_replicas(make_train_step(preprocess=preprocess, learning_rate_fn=setup.learning_rate_fn,
                                         label_smoothing=config.training.label_smoothing))
    streams = jnp.stack([step_stream(seed) for seed in setup.seeds])
    sharding = NamedSharding(setup.mesh, P('seeds', 'data'))

    @partial(jax.jit, donate_argnums=0)
    @chex.assert_max_traces(n=1)  # a second trace would be a second compilation: a bug, not a cost to pay
    def train_step(state, feed_input):
        batch = jax.lax.with_sharding_constraint(feed.batch(feed_input, state.step), sharding)
        return step(state, batch, jax.vmap(jax.random.fold_in, in_axes=(0, None))(streams, state.step))

    return train_step


def _describe(config, workdir: str, setup, start: int) -> str:
    """The run's first line: what trains on what, how long, where; and where it resumes."""
    ds, t, seeds = setup.dataset, config.training, setup.seeds
    source = data_label(config.data)
    return (f'{config.model.name} on {source}: {ds.num_train} train'
            + (f' (expanded by {config.data.augment})' if config.data.augment_mode == 'expand' else '')
            + f' / {ds.num_eval} {ds.eval_split} images'
            + (f' of {ds.image_size}x{ds.image_size} streamed by {ds.workers} worker(s)' if is_streamed(ds) else '')
            + f', batch {t.batch_size}, {setup.steps_per_epoch} steps/epoch, {setup.total_steps} steps, '
            f'{jax.device_count()} {jax.devices()[0].platform} device(s)'
            + (f', {len(seeds)} seeds in one program ({workdir}/seed{seeds[0]}..seed{seeds[-1]})'
               if len(seeds) > 1 else '')
            + (f'; resuming at step {start}' if start else ''))


def _estimate(timer: StepTimer, step: int, total: int, images_per_step: int) -> str:
    """The early estimate of the run's length, from the steps timed since the compiling one."""
    rate = timer.total_rate()
    if not rate:
        return f'step {step}: too fast to time yet'
    left = (total - step) * images_per_step / rate
    return (f'timed {ESTIMATE_STEPS} steps: {images_per_step / rate:.3g} s/step, {rate:.0f} images/s; '
            f'the {total - step} steps left take about {format_duration(left)} at this rate '
            '(evaluations and checkpoints add to it)')


def _check_finite(host_metrics, step: int, ckpts: Checkpoints, seeds: list[int]) -> None:
    """Raises a one-line RunError naming the first step (and seed) whose loss is NaN or infinite;
    ``host_metrics`` are those of the steps up to ``step``."""
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
