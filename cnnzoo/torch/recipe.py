"""A cnnzoo config's recipe trained in PyTorch: the other half of ``scripts/compare_accuracy.py``.

:func:`train_torch` trains the PyTorch twin of a config's model from the same starting point and
with the same recipe as :func:`cnnzoo.run.loop.train_and_evaluate`, so that the two runs differ only in
the framework:

- the same initial weights (the cnnzoo initialisation of ``config.seed``, converted);
- the same data in the same order (``epoch_permutation(seed, epoch)`` each epoch, the loop's
  batches) and the same augmentation draws (each step's crop offsets and flips are the numbers
  the JAX step draws from ``fold_in(step_stream(seed), step)``; presets ``'none'`` and
  ``'crop_flip'``);
- the same optimizer (:func:`make_torch_optimizer` of ``config.optimizer``) with the schedule's
  rate set before every step (``learning_rate_fn(step)``, as optax reads it), and the same loss
  (the twin of ``training.loss`` with its parameters, :func:`make_torch_loss`; auxiliary heads
  weighted as cnnzoo weights them);
- the same evaluation: every ``eval_every_epochs`` and at the end, over the whole test split
  (or the validation split) in eval mode, recording the criterion without label smoothing.

An optimizer without a PyTorch twin (``lars``, ``lamb``), another augmentation or another dtype is
refused in one line by :func:`check_torch_recipe`, which the comparison calls before either framework
trains.

What differs: dropout masks (PyTorch's generator, seeded with ``config.seed``), the order in which
floats are added inside each library's kernels, and, unless the model sets
``bn_running_var='unbiased'``, the BatchNorm running variance (torch averages the unbiased one).
So this is the same recipe, not the same trajectory: rounding differences grow quickly. Measured on
a one-block-per-stage ResNet and 20 real CIFAR images, the first step from identical weights, batch
and rate already moves BatchNorm offsets 0.2-0.4% differently in the two frameworks (JAX's
float32 step against the float64 twin; the float32 and float64 twins agree to 1e-6 there), and
the whole parameter set is ~3% apart after 4 steps (tests/test_compare_accuracy.py).
``training.dtype='bfloat16'`` runs the twin under ``torch.autocast(bfloat16)`` in channels_last.
"""

from __future__ import annotations

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import torch

from cnnzoo import data as data_lib
from cnnzoo.data.augmentation import crop_flip_draws, preset_keys
from cnnzoo.errors import ConfigError, RunError
from cnnzoo.rngs import step_stream
from cnnzoo.torch.losses import make_torch_loss
from cnnzoo.torch.models import load_variables, torch_twin, twin_loss
from cnnzoo.torch.ops import PAD, crop_flip, device, synchronize, to_model_input
from cnnzoo.torch.optim import make_torch_optimizer, torch_optimizer
from cnnzoo.training import steps_from_epochs
from cnnzoo.training.steps import step_keys

PRESETS = ('none', 'crop_flip')
DTYPES = ('float32', 'bfloat16')


def check_torch_recipe(config) -> None:
    """Refuses, in one line, what the PyTorch side cannot run the same way: an augmentation other than
    :data:`PRESETS`, a dtype other than :data:`DTYPES`, an optimizer without a ``torch.optim`` twin.
    Nothing is built: call it before training either framework."""
    preset = data_lib.online_preset(config.data)  # 'expand' has already augmented the training set
    if preset not in PRESETS:
        raise ConfigError(f'config.data.augment={preset!r}: the PyTorch side offers {", ".join(PRESETS)}')
    if config.training.dtype not in DTYPES:
        raise ConfigError(f'config.training.dtype={config.training.dtype!r}: use {" or ".join(DTYPES)}')
    torch_optimizer(config.optimizer.name)


@partial(jax.jit, static_argnums=(0, 2))
def _draws(seed: int, steps, batch_size: int):
    stream = step_stream(seed)

    def draws(step):
        aug_key, _ = step_keys(jax.random.fold_in(stream, step))
        return crop_flip_draws(preset_keys(aug_key)[0], batch_size, PAD)

    return jax.vmap(draws)(steps)


def augmentation_draws(seed: int, steps, batch_size: int):
    """Crop offsets (S, B, 2) and flips (S, B) of the JAX train steps ``steps`` of run ``seed``
    (compiled once per seed, batch size and number of steps)."""
    return jax.device_get(_draws(seed, jnp.asarray(steps, jnp.int32), batch_size))


class TorchRun:
    """The twin of ``setup.model`` with the state of ``setup`` (a :class:`cnnzoo.run.setup.Setup`) and the
    recipe of ``config``; :meth:`step` runs one training step, :meth:`evaluate` one evaluation.

    ``float64=True`` runs the twin in double precision (``training.dtype`` must be float32), a
    reference for how far float32 rounding takes a run.
    """

    def __init__(self, config, setup, *, float64: bool = False):
        check_torch_recipe(config)
        self.config, self.setup, self.preset = config, setup, data_lib.online_preset(config.data)
        self.dev = dev = device()
        self.bf16 = config.training.dtype == 'bfloat16'
        if float64 and self.bf16:
            raise ValueError('float64=True needs config.training.dtype=float32')
        self.float_dtype = torch.float64 if float64 else torch.float32
        torch.manual_seed(config.seed)
        model = torch_twin(setup.model)
        load_variables(model, jax.device_get(setup.state.variables()), setup.model)
        model = model.to(dev, self.float_dtype)
        if self.bf16:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.train()
        self.opt = make_torch_optimizer(config.optimizer, model, learning_rate=0.0)
        self.loss_fn = make_torch_loss(config)
        self.eval_loss_fn = make_torch_loss(config, evaluation=True)
        steps = jnp.arange(setup.total_steps, dtype=jnp.int32)
        self.rates = np.asarray(jax.device_get(jax.jit(jax.vmap(setup.learning_rate_fn))(steps)), np.float64)
        ds = setup.dataset
        self.images = torch.from_numpy(ds.train_images).to(dev)
        self.labels = torch.from_numpy(ds.train_labels.astype(np.int64)).to(dev)
        self.test_images = torch.from_numpy(ds.test_images).to(dev)
        self.test_labels = torch.from_numpy(ds.test_labels.astype(np.int64)).to(dev)
        self.mean = torch.tensor(ds.mean, dtype=self.float_dtype, device=dev)
        self.std = torch.tensor(ds.std, dtype=self.float_dtype, device=dev)
        self._epoch: int | None = None  # the epoch whose order and draws are loaded

    def _start_epoch(self, epoch: int):
        c, s = self.config, self.setup
        n = len(s.dataset.train_images)
        perm = np.asarray(jax.device_get(data_lib.epoch_permutation(c.seed, epoch, n)))
        self.perm = torch.from_numpy(perm.astype(np.int64)).to(self.dev)
        first = epoch * s.steps_per_epoch
        steps = np.arange(first, first + s.steps_per_epoch)
        offsets, flips = augmentation_draws(c.seed, steps, c.training.batch_size)
        self.offsets = torch.from_numpy(np.array(offsets, np.int64)).to(self.dev)
        self.flips = torch.from_numpy(np.array(flips, bool)).to(self.dev)
        self._epoch, self._first = epoch, first

    def augmented_batch(self, step: int):
        """Normalised NHWC float32 images and labels of train step ``step``, as the JAX step sees them."""
        s, b = self.setup, self.config.training.batch_size
        epoch = step // s.steps_per_epoch
        if epoch != self._epoch:
            self._start_epoch(epoch)
        index = step % s.steps_per_epoch
        idx = self.perm[index * b:(index + 1) * b]
        images, labels = self.images[idx], self.labels[idx]
        if self.preset == 'none':
            x = images.float() / 255.0
        else:
            i = step - self._first
            x = crop_flip(images, self.offsets[i], self.flips[i])
        return (x.to(self.float_dtype) - self.mean) / self.std, labels

    def step(self, step: int):
        """Train step ``step`` (0-based); returns (loss, batch accuracy) as tensors on the device."""
        x, labels = self.augmented_batch(step)
        x = x.permute(0, 3, 1, 2).contiguous(
            memory_format=torch.channels_last if self.bf16 else torch.contiguous_format)
        for group in self.opt.param_groups:
            group['lr'] = float(self.rates[step])
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.bf16):
            output = self.model(x)
        loss, logits = twin_loss(self.model, output, labels, self.loss_fn, dtype=self.float_dtype)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach(), (logits.argmax(-1) == labels).float().mean()

    @torch.no_grad()
    def evaluate(self) -> dict:
        self.model.eval()
        b = self.config.training.eval_batch_size
        correct, loss_sum = 0.0, 0.0
        for start in range(0, len(self.test_images), b):
            images, labels = self.test_images[start:start + b], self.test_labels[start:start + b]
            x = to_model_input(images.to(self.float_dtype) / 255.0, self.mean, self.std, self.bf16)
            with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits = self.model(x).to(self.float_dtype)
            loss_sum += float(self.eval_loss_fn(logits, labels).sum())
            correct += float((logits.argmax(-1) == labels).sum())
        self.model.train()
        n = len(self.test_images)
        return {'loss': loss_sum / n, 'accuracy': correct / n, 'count': n}

    def variables(self) -> dict:
        """The twin's weights and statistics as cnnzoo variables (numpy)."""
        from cnnzoo.torch.convert import torch_to_flax

        state_dict = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        return torch_to_flax(state_dict, self.setup.model,
                             template=jax.device_get(self.setup.state.variables()))


def train_torch(config, setup, *, log=print) -> dict:
    """Trains ``config``'s recipe in PyTorch from ``setup`` (see the module docstring).

    Returns the loop's kind of summary: ``wall_seconds`` (from the first step to the end, with
    evaluations, as the JAX loop counts it), ``train_images_per_sec`` (training steps only, the first
    excluded), ``evals`` (step, epoch, loss, accuracy, seconds since the start), ``final`` and
    ``best_accuracy``, and ``run`` (the :class:`TorchRun`, for its weights).
    """
    t = config.training
    run = TorchRun(config, setup)
    spe, total = setup.steps_per_epoch, setup.total_steps
    eval_every = max(1, steps_from_epochs(t.eval_every_epochs, spe))
    started = time.perf_counter()
    evals, train_seconds, timed_steps = [], 0.0, 0
    losses, accuracies = [], []
    for step in range(total):
        t0 = time.perf_counter()
        loss, accuracy = run.step(step)
        synchronize()
        if step > 0:
            train_seconds += time.perf_counter() - t0
            timed_steps += 1
        losses.append(loss)
        accuracies.append(accuracy)
        done = step + 1
        if done % t.log_every_steps == 0:
            mean_loss = float(torch.stack(losses).mean())
            if not np.isfinite(mean_loss):
                raise RunError(f'PyTorch loss is {mean_loss} by step {done}; stopping')
            rate = timed_steps * t.batch_size / train_seconds if train_seconds else float('nan')
            log(f'torch step {done}/{total} epoch {done / spe:.2f} loss {mean_loss:.4f} '
                f'accuracy {float(torch.stack(accuracies).mean()):.4f} lr {run.rates[step]:.5f} {rate:.0f} img/s')
            losses, accuracies = [], []
        if done % eval_every == 0 or done == total:
            result = run.evaluate()
            evals.append({'step': done, 'epoch': done / spe, 'loss': result['loss'],
                          'accuracy': result['accuracy'], 'seconds': time.perf_counter() - started})
            log(f'torch eval step {done}: loss {result["loss"]:.4f} accuracy {result["accuracy"]:.4f} '
                f'on {result["count"]} images')
    wall = time.perf_counter() - started
    return {'wall_seconds': wall, 'train_images_per_sec': timed_steps * t.batch_size / train_seconds
            if train_seconds else None, 'evals': evals, 'final': evals[-1],
            'best_accuracy': max(e['accuracy'] for e in evals), 'run': run}
