"""The training core: optimizers' conventions, the pure train step, aux heads (with every criterion),
exact eval."""

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnzoo.config import apply_overrides, default_config
from cnnzoo.training import (
    AUX_COLLECTION,
    LOSSES,
    TrainState,
    cross_entropy,
    decay_mask,
    init_variables,
    make_eval_step,
    make_loss,
    make_optimizer,
    make_train_step,
)


class TinyNet(nn.Module):
    """Conv-BN-ReLU-pool-Dense, with an optional auxiliary head sown the documented way."""

    num_classes: int = 10
    aux_weight: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.Conv(8, (3, 3), use_bias=False, dtype=self.dtype)(x.astype(self.dtype))
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
        x = nn.relu(x).mean(axis=(1, 2))
        if self.aux_weight and (train or self.is_initializing()):
            self.sow(AUX_COLLECTION, 'aux1', {'logits': nn.Dense(self.num_classes, name='aux')(x),
                                              'weight': self.aux_weight})
        return nn.Dense(self.num_classes, name='head')(x).astype(jnp.float32)


def opt_config(**overrides):
    config = apply_overrides(default_config(), [(f'optimizer.{k}', repr(v)) for k, v in overrides.items()])
    return config.optimizer


def test_decay_mask_kernels_only_or_everything():
    params = {'conv': {'kernel': jnp.ones((3, 3, 3, 8))}, 'bn': {'scale': jnp.ones(8), 'bias': jnp.ones(8)}}
    assert decay_mask(params, False) == {'conv': {'kernel': True}, 'bn': {'scale': False, 'bias': False}}
    assert all(jax.tree_util.tree_leaves(decay_mask(params, True)))


@pytest.mark.parametrize('nesterov', [False, True])
def test_sgd_follows_pytorch_convention(nesterov):
    """Two steps against PyTorch's SGD update rule written out by hand (dampening 0)."""
    lr, mom, wd = 0.1, 0.9, 0.01
    tx = make_optimizer(opt_config(momentum=mom, nesterov=nesterov, weight_decay=wd), lr)
    p = {'w': jnp.array([[1.0, -2.0]]), 'b': jnp.array([0.5])}
    grads = [{'w': jnp.array([[0.3, 0.1]]), 'b': jnp.array([-0.2])},
             {'w': jnp.array([[-0.1, 0.4]]), 'b': jnp.array([0.3])}]
    state = tx.init(p)
    ref = {k: np.asarray(v, np.float64) for k, v in p.items()}
    buf = {k: np.zeros_like(v) for k, v in ref.items()}
    for g in grads:
        updates, state = tx.update(g, state, p)
        p = optax.apply_updates(p, updates)
        for k, r in ref.items():
            d = np.asarray(g[k], np.float64) + wd * r
            buf[k] = mom * buf[k] + d
            ref[k] = r - lr * ((d + mom * buf[k]) if nesterov else buf[k])
    for k, r in ref.items():
        np.testing.assert_allclose(p[k], r, rtol=1e-6)


def test_adamw_decay_is_decoupled_and_masked():
    lr, wd = 0.01, 0.1
    tx = make_optimizer(opt_config(name='adamw', weight_decay=wd, decay_bn_and_bias=False), lr)
    p = {'kernel': jnp.full((2, 2), 2.0), 'bias': jnp.full((2,), 2.0)}
    g = jax.tree_util.tree_map(jnp.ones_like, p)
    updates, _ = tx.update(g, tx.init(p), p)
    new = optax.apply_updates(p, updates)
    # First Adam step moves each parameter by lr * sign(g); decoupled decay subtracts lr*wd*p.
    np.testing.assert_allclose(new['kernel'], 2.0 - lr - lr * wd * 2.0, rtol=1e-5)
    np.testing.assert_allclose(new['bias'], 2.0 - lr, rtol=1e-5)


def _two_steps(tx):
    """Two updates of a kernel and a bias by ``tx``, with fixed gradients; the parameters after each."""
    p = {'kernel': jnp.array([[1.0, -2.0], [0.5, 3.0]]), 'bias': jnp.array([0.5, -0.25])}
    grads = [{'kernel': jnp.array([[0.3, 0.1], [-0.2, 0.05]]), 'bias': jnp.array([-0.2, 0.1])},
             {'kernel': jnp.array([[-0.1, 0.4], [0.3, -0.3]]), 'bias': jnp.array([0.3, 0.2])}]
    state, out = tx.init(p), []
    for g in grads:
        updates, state = tx.update(g, state, p)
        p = optax.apply_updates(p, updates)
        out.append(p)
    return out, grads


def test_lars_follows_you_et_al_with_the_trust_ratio_of_the_decayed_gradient():
    """LARS written out: d = g + wd w, local rate tc |w| / |d| per tensor, momentum of lr * rate * d;
    with decay_bn_and_bias=False the bias gets neither decay nor the trust ratio."""
    lr, mom, wd, tc = 0.5, 0.9, 0.01, 0.02
    config = opt_config(name='lars', momentum=mom, weight_decay=wd, trust_coefficient=tc, decay_bn_and_bias=False)
    out, grads = _two_steps(make_optimizer(config, lr))
    w = {'kernel': np.array([[1.0, -2.0], [0.5, 3.0]]), 'bias': np.array([0.5, -0.25])}
    buf = {k: np.zeros_like(v) for k, v in w.items()}
    for g, got in zip(grads, out):
        for k, gk in g.items():
            d = np.asarray(gk, np.float64) + (wd * w[k] if k == 'kernel' else 0.0)
            rate = tc * np.linalg.norm(w[k]) / np.linalg.norm(d) if k == 'kernel' else 1.0
            buf[k] = mom * buf[k] + lr * rate * d
            w[k] = w[k] - buf[k]
            np.testing.assert_allclose(got[k], w[k], rtol=1e-5)


def test_lamb_follows_you_et_al_2020():
    """LAMB written out: Adam's bias-corrected direction plus decoupled decay (kernel only here),
    scaled per tensor by |w| / |direction| (every tensor, the bias too)."""
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-6, 0.1
    config = opt_config(name='lamb', b1=b1, b2=b2, eps=eps, weight_decay=wd, decay_bn_and_bias=False)
    out, grads = _two_steps(make_optimizer(config, lr))
    w = {'kernel': np.array([[1.0, -2.0], [0.5, 3.0]]), 'bias': np.array([0.5, -0.25])}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    for t, (g, got) in enumerate(zip(grads, out), start=1):
        for k, gk in g.items():
            gk = np.asarray(gk, np.float64)
            m[k] = b1 * m[k] + (1 - b1) * gk
            v[k] = b2 * v[k] + (1 - b2) * gk ** 2
            r = (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + eps) + (wd * w[k] if k == 'kernel' else 0.0)
            w[k] = w[k] - lr * np.linalg.norm(w[k]) / np.linalg.norm(r) * r
            np.testing.assert_allclose(got[k], w[k], rtol=1e-5)


def _setup(model=None, *, label_smoothing=0.0, dtype=jnp.float32, loss_fn=None):
    model = model or TinyNet(dtype=dtype)
    tx = make_optimizer(opt_config(), 0.1)
    variables = init_variables(model, jax.random.PRNGKey(0), (8, 8, 3))
    state = TrainState.create(apply_fn=model.apply, variables=variables, tx=tx)
    preprocess = lambda rng, x: x.astype(jnp.float32) / 255.0  # noqa: E731
    step = jax.jit(make_train_step(preprocess=preprocess, learning_rate_fn=lambda s: 0.1,
                                   loss_fn=loss_fn or partial(cross_entropy, label_smoothing=label_smoothing)))
    rng = np.random.default_rng(0)
    batch = {'image': jnp.asarray(rng.integers(0, 256, (16, 8, 8, 3)), jnp.uint8),
             'label': jnp.asarray(rng.integers(0, 10, 16), jnp.int32)}
    return state, step, batch


def test_train_step_updates_everything_and_is_pure():
    state, step, batch = _setup()
    new, metrics = step(state, batch, jax.random.PRNGKey(1))
    again, _metrics2 = step(state, batch, jax.random.PRNGKey(1))
    assert int(new.step) == 1 and set(metrics) == {'loss', 'accuracy', 'learning_rate'}
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(again)):
        np.testing.assert_array_equal(a, b)
    changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), state.params, new.params)
    assert all(jax.tree_util.tree_leaves(changed))
    assert not np.allclose(new.batch_stats['BatchNorm_0']['mean'], state.batch_stats['BatchNorm_0']['mean'])
    assert float(metrics['learning_rate']) == pytest.approx(0.1)


def test_label_smoothing_changes_the_loss():
    state, step, batch = _setup(label_smoothing=0.0)
    _, plain = step(state, batch, jax.random.PRNGKey(1))
    state, step, batch = _setup(label_smoothing=0.1)
    _, smooth = step(state, batch, jax.random.PRNGKey(1))
    assert float(plain['loss']) != pytest.approx(float(smooth['loss']))


def test_aux_heads_add_weighted_loss_in_training_only():
    state, step, batch = _setup(TinyNet(aux_weight=0.3))
    _, metrics = step(state, batch, jax.random.PRNGKey(1))
    images = batch['image'].astype(jnp.float32) / 255.0
    logits, sown = state.apply_fn(state.variables(), images, train=True,
                                  mutable=['batch_stats', AUX_COLLECTION])
    aux = sown[AUX_COLLECTION]['aux1'][0]
    expected = (cross_entropy(logits, batch['label']).mean()
                + 0.3 * cross_entropy(aux['logits'], batch['label']).mean())
    assert float(metrics['loss']) == pytest.approx(float(expected), rel=1e-5)
    eval_logits = state.apply_fn(state.variables(), images, train=False)
    assert eval_logits.shape == (16, 10)


@pytest.mark.parametrize('loss', LOSSES.names())
def test_aux_heads_take_the_runs_criterion(loss):
    """Every criterion: the step's loss is the criterion's mean over the main logits plus the
    auxiliary head's, weighted; and the step trains every parameter, the auxiliary head's too."""
    config = apply_overrides(default_config(), [('training.loss', loss)])
    loss_fn = make_loss(config)
    state, step, batch = _setup(TinyNet(aux_weight=0.3), loss_fn=loss_fn)
    new, metrics = step(state, batch, jax.random.PRNGKey(1))
    images = batch['image'].astype(jnp.float32) / 255.0
    logits, sown = state.apply_fn(state.variables(), images, train=True, mutable=['batch_stats', AUX_COLLECTION])
    aux = sown[AUX_COLLECTION]['aux1'][0]
    expected = loss_fn(logits, batch['label']).mean() + 0.3 * loss_fn(aux['logits'], batch['label']).mean()
    assert float(metrics['loss']) == pytest.approx(float(expected), rel=1e-5)
    if loss != 'cross_entropy':
        ce = cross_entropy(logits, batch['label']).mean() + 0.3 * cross_entropy(aux['logits'], batch['label']).mean()
        assert float(metrics['loss']) != pytest.approx(float(ce), rel=1e-3)
    moved = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), state.params, new.params)
    assert all(jax.tree_util.tree_leaves(moved)), moved


def test_bfloat16_compute_keeps_float32_params():
    state, step, batch = _setup(dtype=jnp.bfloat16)
    new, metrics = step(state, batch, jax.random.PRNGKey(1))
    assert np.isfinite(float(metrics['loss']))
    assert {x.dtype for x in jax.tree_util.tree_leaves(new.params)} == {jnp.dtype(jnp.float32)}


def test_eval_step_counts_only_unmasked_examples():
    state, _, batch = _setup()
    eval_step = jax.jit(make_eval_step(preprocess=lambda x: x.astype(jnp.float32) / 255.0))
    full = eval_step(state, {**batch, 'mask': jnp.ones(16, bool)})
    half = eval_step(state, {**batch, 'mask': jnp.arange(16) < 8})
    first = eval_step(state, {k: v[:8] for k, v in batch.items()} | {'mask': jnp.ones(8, bool)})
    assert float(full['count']) == 16 and float(half['count']) == 8
    assert float(half['correct']) == float(first['correct'])
    assert float(half['loss_sum']) == pytest.approx(float(first['loss_sum']), rel=1e-5)
