"""The one training loop: steps, evaluation, metrics, checkpoints and preemption.

Exact resume: the state (params, batch_stats, optimizer state, step) is checkpointed with orbax;
each epoch's order is ``epoch_permutation(seed, epoch)``, and each step's random numbers come from
``fold_in(step_stream(seed), step)`` (:mod:`cnnzoo.rngs`). A run killed at any moment (even
SIGKILL) and started again with the same command restores the latest checkpoint and continues on
the same trajectory: on CPU the final parameters are bitwise those of a run never interrupted, and
``metrics.jsonl`` (and TensorBoard) hold record for record what the uninterrupted run's hold.

The loop reads as flax's: set up, restore, then ``for each step: state, metrics = train_step(...)``
and the periodic work a :class:`Due` schedule names (a record, an evaluation, a checkpoint). What it
asks at its boundaries (whether to stop, agreed by every process; the beats a supervising parent
hears) is one :class:`cnnzoo.run.control.RunControl`.

Stopping: SIGTERM and SIGINT end the run at the next step boundary with a checkpoint. At most two
steps are in flight (the loop waits for the step before the last before it goes on), so a stop waits
for at most two steps, whatever the model and device; during the first step's compilation or an
evaluation a stop returns within a fraction of a second, the last checkpoint intact (an evaluation
cut short is run again when the run resumes). Several processes stop after the same step or
evaluation batch (the stop flag travels inside the step: :mod:`cnnzoo.run.control`).

Several devices and processes: the state is copied over the ``data`` axis of a mesh of every device
of every process and each batch is split along it, so BatchNorm's statistics and the gradient are
those of the global batch, as in a one-device run (the same step up to the order of float sums:
tests/test_scale.py). Each process holds the dataset and places on its own devices only their
copies (``jax.make_array_from_callback``); every process evaluates the same sharded batches, so each
held-out example counts once. Process 0 alone writes ``config.json``, ``metrics.jsonl``, TensorBoard
and the progress lines and holds the workdir lock; orbax saves and restores the checkpoints with all
processes taking part.

Seeds: a one-seed run's state is one model's. With ``training.num_seeds`` > 1 it holds one replica
per seed on a leading axis and the step is mapped over them (:func:`cnnzoo.training.over_replicas`,
one after the other on the CPU, vmapped elsewhere); replica k initialises,
orders the data and draws its augmentation exactly as the run with seed ``seed + k`` does, and is
recorded as that run would be (:mod:`cnnzoo.run.recorder`). The mesh is ``seeds`` x ``data``:
``training.seed_devices`` devices along the replica axis, the batch split over the rest.

Side effects live here and only here: the train and eval steps (cnnzoo.training) are pure.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from cnnzoo.rngs import step_stream
from cnnzoo.run.checkpoints import Checkpoints, Restored, quiet_teardown_echoes
from cnnzoo.run.control import RunControl
from cnnzoo.run.determinism import check_deterministic
from cnnzoo.run.distributed import is_primary
from cnnzoo.run.feeds import is_streamed, make_evaluator, make_feed
from cnnzoo.run.mesh import to_host
from cnnzoo.run.progress import Progress, StepTimer, format_duration
from cnnzoo.run.recorder import Recorder
from cnnzoo.run.setup import build, use_compilation_cache
from cnnzoo.run.signals import Stopped, StopSignals
from cnnzoo.run.validation import check_config, check_devices
from cnnzoo.run.workdir import (
    WorkdirLock,
    has_checkpoint,
    provisional_files,
    seed_dir,
    write_or_check_config,
)
from cnnzoo.training import (
    in_sequence,
    make_loss,
    make_train_step,
    over_replicas,
    steps_from_epochs,
)

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
        self.limit, self._wait = limit, wait
        self._pending: list = []

    def add(self, outputs):
        """Records a dispatched step's outputs; returns once at most ``limit`` steps are unfinished,
        with the outputs of the step it waited for (None when it waited for none)."""
        self._pending.append(outputs)
        if len(self._pending) < self.limit:
            return None
        finished = self._pending[-self.limit]
        self._wait(finished)
        return finished

    def take(self) -> list:
        """The outputs recorded since the last call, oldest first (still on the device)."""
        taken, self._pending = self._pending, []
        return taken


def train_and_evaluate(config, workdir: str, *, extend: bool = False, join=None) -> dict:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint; returns a summary.

    The config is checked whole first (:func:`cnnzoo.run.validation.check_config`, once): a bad value
    is a one-line ConfigError before anything is read or written. ``join()``, when given, joins this
    process to the others of a multi-process run (:func:`cnnzoo.run.distributed.initialize`): after
    the config is known good, before the device count is checked. A start that fails before its first
    checkpoint leaves the disk as it found it (:func:`cnnzoo.run.workdir.provisional_files`).
    ``extend=True`` lets a run go on with a longer ``training.num_steps``/``num_epochs`` than it was
    started with (see the README, "Continue a finished run"). ``summary['stopped_by']`` names the
    signal when SIGTERM/SIGINT stopped the run (after saving a checkpoint).
    """
    model = check_config(config, devices=False)
    if join is not None:
        join()
    check_devices(config)
    check_deterministic(config)
    if config.training.compilation_cache:
        use_compilation_cache()
    with StopSignals() as signals, _claimed(workdir, config, extend=extend):
        return _train(config, workdir, signals, model)


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


@dataclasses.dataclass(frozen=True)
class Due:
    """Which periodic work falls after a step: a train record, an evaluation, a checkpoint, the early
    estimate of the run's length (the loop's schedule, from ``config.training``)."""

    log_every: int
    eval_every: int
    checkpoint_every: int
    total: int
    estimate_at: int

    @classmethod
    def of(cls, config, setup, start: int) -> Due:
        """The schedule of ``config``'s run, resumed at ``start``."""
        t = config.training
        eval_every = max(1, steps_from_epochs(t.eval_every_epochs, setup.steps_per_epoch))
        return cls(t.log_every_steps, eval_every, t.checkpoint_every_steps, setup.total_steps,
                   start + 1 + ESTIMATE_STEPS)

    def __call__(self, step: int) -> set[str]:
        due = {'log'} if step % self.log_every == 0 else set()
        if step % self.eval_every == 0 or step == self.total:
            due.add('eval')
        if step % self.checkpoint_every == 0 or step == self.total:
            due.add('checkpoint')
        if step == self.estimate_at and step < self.total:
            due.add('estimate')
        return due


def _train(config, workdir: str, signals: StopSignals, model) -> dict:
    """Sets the run up, then steps; at the steps due, a record, an evaluation, a checkpoint."""
    started = time.perf_counter()
    chex.clear_trace_counter()  # the step functions are a run's own: count their traces per run
    t = config.training
    progress = Progress(0, bar=t.progress_bar, stream=None if is_primary() else open(os.devnull, 'w'))  # noqa: SIM115
    setup = build(config, model=model, initial_weights=not has_checkpoint(workdir))
    total = progress.total = setup.total_steps
    with contextlib.ExitStack() as stack:
        stack.enter_context(quiet_teardown_echoes())  # exited last: after the checkpoints' threads end
        ckpts = stack.enter_context(Checkpoints(workdir, keep=t.keep_checkpoints))
        restored = _restore(ckpts, setup, workdir)
        state, start = restored.state, restored.step
        record = stack.enter_context(Recorder(config, workdir, setup, start_step=start, ckpts=ckpts, progress=progress,
                                              window=restored.records))
        feed = stack.enter_context(contextlib.closing(make_feed(config, setup, start, restored.data)))
        control, due = RunControl(signals, setup.mesh), Due.of(config, setup, start)
        train_step = _train_step(config, setup, feed)
        evaluator = make_evaluator(setup, t.eval_batch_size, make_loss(config, evaluation=True))
        evaluate = partial(_evaluate, record, evaluator, control)
        progress.message(_describe(config, workdir, setup, start))
        stopped_by, step = None, start
        if start and 'eval' in due(start) and record.needs_eval(start) and not signals.received:
            stopped_by = evaluate(state, start)  # the evaluation a stop cut short, of the restored step
        first = feed.next(start) if start < total and not stopped_by else None
        if first is not None:  # compiling can take minutes: a stop abandons it (nothing new to save)
            stopped_by = control.compile(lambda: train_step.lower(state, first, control.flags()).compile())
        in_flight, timer = InFlight(), StepTimer(t.batch_size)  # images/s per replica, as the records report it
        while step < total and not stopped_by:
            state, metrics = train_step(state, feed.next(step) if step > start else first, control.flags())
            step += 1
            stopped_by = control.after_step(in_flight.add(metrics))  # at most two steps unfinished
            if step == start + 1:  # the first step: compiled and run, timed apart
                _check_finite(to_host([metrics]), step, ckpts, setup.seeds)
                progress.message(f'compiled and ran the first step in {time.perf_counter() - started:.1f}s '
                                 '(start-up included)')
                timer.restart(step)
            work = due(step)
            if not (work or stopped_by):
                continue
            host = to_host(in_flight.take())
            _check_finite(host, step, ckpts, setup.seeds)
            record.add(host)
            timer.stop(step)
            if 'estimate' in work:
                progress.message(_estimate(timer, step, total, t.batch_size))
            if 'log' in work:
                rate = timer.window_rate()
                record.log(step, rate, eta_seconds=(total - step) * t.batch_size / rate if rate else None)
            if 'eval' in work and not stopped_by:
                stopped_by = evaluate(state, step)
            if 'checkpoint' in work or stopped_by:
                ckpts.save(state, force=True, records=record.window_state(), data=feed.state())
                control.beat()
            timer.restart(step)
        ckpts.wait()
        return _finish(record, progress, ckpts, setup, workdir, state=state, step=step, stopped_by=stopped_by,
                       wall=time.perf_counter() - started, rate=timer.total_rate())


def _evaluate(record: Recorder, evaluator, control: RunControl, state, step: int) -> str | None:
    """Evaluates ``state`` and records it; returns the stop the run takes after it, if any (a stop that
    cuts the evaluation short: it is run again when the run resumes)."""
    try:
        record.evaluation(step, evaluator(state, guard=control.run_batch, flags=control.flags), state)
    except Stopped as stopped:
        return control.after_evaluation(stopped)
    return control.after_evaluation(None)


def _finish(record, progress, ckpts, setup, workdir, *, state, step, stopped_by, wall, rate) -> dict:
    """The run's summary, and its last line: where it stopped, or what it reached."""
    summary = record.summary(step=step, total=setup.total_steps, stopped_by=stopped_by, wall=wall,
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


def _restore(ckpts: Checkpoints, setup, workdir: str) -> Restored:
    """Where to start from: the latest restorable checkpoint, else the initial state."""
    restored = ckpts.restore(setup.state, 'latest')
    if restored is None and os.path.isdir(os.path.join(workdir, 'damaged')):
        raise RunError(f'no checkpoint in {workdir}/checkpoints can be restored (each was moved to '
                       f'{workdir}/damaged); to start the run over, choose another --workdir')
    restored = restored or Restored(setup.state)
    if restored.step > setup.total_steps:
        raise RunError(f'{workdir} is at step {restored.step}, past the {setup.total_steps} steps of this config')
    return restored


def _train_step(config, setup, feed):
    """The jitted step, ``(state, feed input, stop flags) -> (state, metrics)``: each replica's batch
    and random numbers those of its seed's run; the state's buffers are donated (updated in place).
    ``metrics['stop']`` is the largest of the stop flags (:mod:`cnnzoo.run.control`)."""
    ds = setup.dataset
    preset = data_lib.online_preset(config.data)

    def preprocess(rng, images):
        return data_lib.normalize(data_lib.augment(rng, images, preset, mean=ds.mean), ds.mean, ds.std)

    step = make_train_step(preprocess=preprocess, learning_rate_fn=setup.learning_rate_fn, loss_fn=make_loss(config))
    sharding = NamedSharding(setup.mesh, P('data'))

    def one_model(state, feed_input, stream):
        batch = jax.lax.with_sharding_constraint(feed.batch(feed_input, state.step), sharding)
        return step(state, batch, jax.random.fold_in(stream, state.step))

    if setup.several:  # the one map over the replicas: each one the model of its seed
        streams = jnp.stack([step_stream(seed) for seed in setup.seeds])
        mapped = over_replicas(one_model, spmd_axis_name='seeds', sequential=in_sequence(setup.mesh.shape['seeds']))
        run = lambda state, feed_input: mapped(state, feed_input, streams)  # noqa: E731
    else:
        stream = step_stream(setup.seeds[0])
        run = lambda state, feed_input: one_model(state, feed_input, stream)  # noqa: E731

    @partial(jax.jit, donate_argnums=0)
    @chex.assert_max_traces(n=1)  # a second trace would be a second compilation: a bug, not a cost to pay
    def train_step(state, feed_input, flags):
        state, metrics = run(state, feed_input)
        return state, {**metrics, 'stop': jnp.max(flags)}

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
            + (f', {len(seeds)} seeds in one program ({seed_dir(workdir, seeds[0])}..'
               f'{os.path.basename(seed_dir(workdir, seeds[-1]))})'
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
