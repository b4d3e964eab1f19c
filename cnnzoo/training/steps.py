"""TrainState and the pure train/eval steps.

``train_step(state, batch, rng) -> (state, metrics)`` takes a batch of *raw uint8* images and
integer labels: augmentation and normalisation run inside the step, on the device, from ``rng``.
The loop derives ``rng`` from ``(seed, step)`` with ``fold_in``, so nothing random is stored in the
state and a resumed run draws exactly the same numbers.

The criterion is a function ``loss_fn(logits, labels) -> (B,)`` of per-example losses
(:func:`cnnzoo.training.losses.make_loss` makes it from a config). Auxiliary classifiers (GoogLeNet,
Inception v3) are handled for every model the same way (:mod:`cnnzoo.models.outputs`): the loss adds
each sown head's weighted mean loss, with the same criterion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from cnnzoo.models.outputs import AUX_COLLECTION
from cnnzoo.training.losses import cross_entropy


class TrainState(struct.PyTreeNode):
    """Everything that changes during training; ``batch_stats`` is ``{}`` for models without BN."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, *, apply_fn, variables, tx):
        params = variables['params']
        return cls(step=jnp.zeros((), jnp.int32), params=params,
                   batch_stats=variables.get('batch_stats', {}), opt_state=tx.init(params),
                   apply_fn=apply_fn, tx=tx)

    def variables(self):
        return {'params': self.params, 'batch_stats': self.batch_stats}

    def checkpoint_items(self) -> dict:
        """What a checkpoint holds: every array of the state, and nothing else."""
        return {'step': self.step, 'params': self.params, 'batch_stats': self.batch_stats,
                'opt_state': self.opt_state}


def init_variables(model, rng, image_shape, *, jit: bool = True):
    """``model.init`` on one zero image of ``image_shape`` (H, W, C); jitted so init is fast."""
    x = jnp.zeros((1, *image_shape), jnp.float32)
    init = lambda r: model.init({'params': r, 'dropout': r}, x, train=False)  # noqa: E731
    return jax.jit(init)(rng) if jit else init(rng)


def aux_loss(aux_outputs, labels, loss_fn: Callable = cross_entropy):
    """Weighted sum of the mean losses (``loss_fn``, per example) of every sown auxiliary head (0 if none)."""
    total = jnp.zeros((), jnp.float32)
    for entry in jax.tree_util.tree_leaves(aux_outputs, is_leaf=lambda x: isinstance(x, dict) and 'logits' in x):
        total += entry['weight'] * loss_fn(entry['logits'], labels).mean()
    return total


def step_keys(rng):
    """The keys a train step draws from ``rng``: ``(augmentation, dropout)``."""
    return jax.random.split(rng)


def make_train_step(*, preprocess: Callable, learning_rate_fn: Callable,
                    loss_fn: Callable = cross_entropy) -> Callable:
    """Builds ``train_step(state, batch, rng) -> (state, metrics)``.

    ``preprocess(rng, uint8_images) -> float images`` is the augmentation and normalisation;
    ``loss_fn(logits, labels)`` the per-example criterion (default: cross-entropy).
    ``batch`` is ``{'image': uint8 (B, H, W, C), 'label': int (B,)}``.
    """

    def train_step(state: TrainState, batch, rng):
        aug_rng, dropout_rng = step_keys(rng)
        images = preprocess(aug_rng, batch['image'])
        labels = batch['label']

        def objective(params):
            logits, updates = state.apply_fn(
                {'params': params, 'batch_stats': state.batch_stats}, images, train=True,
                mutable=['batch_stats', AUX_COLLECTION], rngs={'dropout': dropout_rng})
            main = loss_fn(logits, labels).mean()
            loss = main + aux_loss(updates.get(AUX_COLLECTION, {}), labels, loss_fn)
            return loss, (logits, updates.get('batch_stats', state.batch_stats))

        (loss, (logits, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                                  batch_stats=batch_stats, opt_state=opt_state)
        metrics = {
            'loss': loss,
            'accuracy': jnp.mean(jnp.argmax(logits, -1) == labels),
            'learning_rate': jnp.asarray(learning_rate_fn(state.step), jnp.float32),
        }
        return new_state, metrics

    return train_step


def make_eval_step(*, preprocess: Callable, loss_fn: Callable = cross_entropy) -> Callable:
    """Builds ``eval_step(state, batch) -> sums`` over a padded batch with a 0/1 ``'mask'``; the
    loss is ``loss_fn`` per example (the run's criterion without label smoothing).

    Returns sums (loss, correct, count) so that the loop adds batches up exactly; padded examples
    have mask 0 and count for nothing.
    """

    def eval_step(state: TrainState, batch):
        logits = state.apply_fn(state.variables(), preprocess(batch['image']), train=False)
        mask = batch['mask'].astype(jnp.float32)
        loss = loss_fn(logits, batch['label'])
        correct = (jnp.argmax(logits, -1) == batch['label']).astype(jnp.float32)
        return {'loss_sum': jnp.sum(loss * mask), 'correct': jnp.sum(correct * mask),
                'count': jnp.sum(mask)}

    return eval_step
