"""TrainState and the pure train/eval steps.

``train_step(state, batch, rng) -> (state, metrics)`` takes a batch of *raw uint8* images and
integer labels: augmentation and normalisation run inside the step, on the device, from ``rng``.
The loop derives ``rng`` from ``(seed, step)`` with ``fold_in``, so nothing random is stored in the
state and a resumed run draws exactly the same numbers.

Auxiliary classifiers (GoogLeNet, Inception v3) are handled for every model the same way: in train
mode a model sows ``{'logits': aux_logits, 'weight': w}`` into the ``'aux_outputs'`` collection,
under any name; the loss adds ``w * cross_entropy(aux_logits)`` for each. ``__call__`` itself always
returns the main logits only, and evaluation ignores auxiliary heads. Models are initialised with
``train=False``, so a model builds its auxiliary heads when ``train or self.is_initializing()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

AUX_COLLECTION = 'aux_outputs'


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


def cross_entropy(logits, labels, label_smoothing: float = 0.0):
    """Per-example softmax cross-entropy with optional label smoothing (Szegedy et al. 2016)."""
    targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def aux_loss(aux_outputs, labels, label_smoothing: float = 0.0):
    """Weighted sum of the mean cross-entropies of every sown auxiliary head (0 if none)."""
    total = jnp.zeros((), jnp.float32)
    for entry in jax.tree_util.tree_leaves(aux_outputs, is_leaf=lambda x: isinstance(x, dict) and 'logits' in x):
        total += entry['weight'] * cross_entropy(entry['logits'], labels, label_smoothing).mean()
    return total


def step_keys(rng):
    """The keys a train step draws from ``rng``: ``(augmentation, dropout)``."""
    return jax.random.split(rng)


def make_train_step(*, preprocess: Callable, learning_rate_fn: Callable,
                    label_smoothing: float = 0.0) -> Callable:
    """Builds ``train_step(state, batch, rng) -> (state, metrics)``.

    ``preprocess(rng, uint8_images) -> float images`` is the augmentation and normalisation.
    ``batch`` is ``{'image': uint8 (B, H, W, C), 'label': int (B,)}``.
    """

    def train_step(state: TrainState, batch, rng):
        aug_rng, dropout_rng = step_keys(rng)
        images = preprocess(aug_rng, batch['image'])
        labels = batch['label']

        def loss_fn(params):
            logits, updates = state.apply_fn(
                {'params': params, 'batch_stats': state.batch_stats}, images, train=True,
                mutable=['batch_stats', AUX_COLLECTION], rngs={'dropout': dropout_rng})
            main = cross_entropy(logits, labels, label_smoothing).mean()
            loss = main + aux_loss(updates.get(AUX_COLLECTION, {}), labels, label_smoothing)
            return loss, (logits, updates.get('batch_stats', state.batch_stats))

        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
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


def replica_axes(state: TrainState) -> TrainState:
    """The ``jax.vmap`` axes of a state that holds several replicas (one per seed): the step is
    shared, every other array has the replica axis first."""
    return state.replace(step=None, params=0, batch_stats=0, opt_state=0)


def over_replicas(train_step: Callable) -> Callable:
    """``train_step`` for several independent replicas in one program, through ``jax.vmap``:
    ``(state, batch (R, B, ...), rng (R, ...)) -> (state, metrics (R,))`` where ``state`` holds R
    replicas (:func:`replica_axes`). Each replica's BatchNorm statistics are its own batch's."""

    def step(state, batch, rng):
        axes = replica_axes(state)
        return jax.vmap(train_step, in_axes=(axes, 0, 0), out_axes=(axes, 0))(state, batch, rng)

    return step


def replica(state: TrainState, index: int) -> TrainState:
    """Replica ``index`` of a several-replica state, as a one-replica state."""
    take = lambda tree: jax.tree_util.tree_map(lambda x: x[index], tree)  # noqa: E731
    return state.replace(params=take(state.params), batch_stats=take(state.batch_stats),
                         opt_state=take(state.opt_state))


def make_eval_step(*, preprocess: Callable) -> Callable:
    """Builds ``eval_step(state, batch) -> sums`` over a padded batch with a 0/1 ``'mask'``.

    Returns sums (loss, correct, count) so that the loop adds batches up exactly; padded examples
    have mask 0 and count for nothing.
    """

    def eval_step(state: TrainState, batch):
        logits = state.apply_fn(state.variables(), preprocess(batch['image']), train=False)
        mask = batch['mask'].astype(jnp.float32)
        loss = cross_entropy(logits, batch['label'])
        correct = (jnp.argmax(logits, -1) == batch['label']).astype(jnp.float32)
        return {'loss_sum': jnp.sum(loss * mask), 'correct': jnp.sum(correct * mask),
                'count': jnp.sum(mask)}

    return eval_step
