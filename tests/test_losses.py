"""The criteria (cnnzoo.training.losses): each against its definition written out in numpy (float64),
their parameters bound from a config, and the schema's checks of those parameters.

The PyTorch twins are compared with these in tests/test_torch_parity.py.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnzoo.config import apply_overrides, default_config, get_key
from cnnzoo.errors import ConfigError
from cnnzoo.training.losses import (
    LOSSES,
    cross_entropy,
    focal,
    hinge,
    loss_params,
    make_loss,
    poly1,
    squared_error,
)

CLASSES = 10


def batch(seed=0, size=32, scale=3.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(size, CLASSES)) * scale).astype(np.float32), rng.integers(0, CLASSES, size)


def softmax64(logits):
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def at_label(x, labels):
    return x[np.arange(len(labels)), labels]


@pytest.mark.parametrize('name', LOSSES.names())
def test_every_criterion_reads_schema_keys_through_its_keyword_arguments(name):
    """A criterion's params are keys of the schema, and its keyword-only arguments are exactly the
    last parts of them (what make_loss binds)."""
    entry = LOSSES.get(name)
    config = default_config()
    for key in entry.params:
        get_key(config, key)  # a KeyError for a key the schema lacks
    keyword = [p.name for p in inspect.signature(entry.value).parameters.values() if p.kind == p.KEYWORD_ONLY]
    assert sorted(keyword) == sorted(key.rpartition('.')[2] for key in entry.params)
    assert entry.help, f'{name} has no help line'


@pytest.mark.parametrize('gamma', [0.0, 0.5, 2.0, 5.0])
def test_focal_is_its_definition(gamma):
    logits, labels = batch()
    p = at_label(softmax64(logits), labels)
    expected = -((1 - p) ** gamma) * np.log(p)
    np.testing.assert_allclose(focal(jnp.asarray(logits), labels, focal_gamma=gamma), expected, rtol=2e-5, atol=1e-7)


def test_focal_at_gamma_0_is_cross_entropy_and_down_weights_easy_examples():
    logits, labels = batch()
    np.testing.assert_allclose(focal(logits, labels, focal_gamma=0.0), cross_entropy(logits, labels), rtol=1e-6,
                               atol=1e-6)
    ce, fl = np.asarray(cross_entropy(logits, labels)), np.asarray(focal(logits, labels, focal_gamma=2.0))
    p = at_label(softmax64(logits), labels)
    assert (fl <= ce + 1e-7).all()
    easy, hard = p > 0.9, p < 0.1
    assert easy.any() and hard.any()
    assert (fl[easy] / ce[easy]).max() < 0.01  # (1 - p)^2 with p > 0.9
    assert (fl[hard] / ce[hard]).min() > 0.8  # with p < 0.1


@pytest.mark.parametrize('gamma', [0.0, 0.5, 2.0])
def test_focal_gradient_is_finite_where_the_label_probability_rounds_to_1(gamma):
    """1 - p_y is 0 in float32 when the label's logit leads by ~17; (1 - p)^gamma computed as a power
    would have an infinite derivative there for gamma < 1."""
    logits, labels = batch(size=4)
    logits[0, labels[0]] += 100.0
    assert float(jax.nn.softmax(jnp.asarray(logits))[0, labels[0]]) == 1.0
    grads = jax.grad(lambda z: focal(z, labels, focal_gamma=gamma).sum())(jnp.asarray(logits))
    assert np.isfinite(np.asarray(grads)).all()
    assert np.abs(np.asarray(grads[0])).max() < 1e-6  # an example already right weighs nothing


def test_squared_error_is_on_the_logits_averaged_over_the_classes():
    logits, labels = batch()
    onehot = np.eye(CLASSES)[labels]
    expected = ((logits.astype(np.float64) - onehot) ** 2).mean(-1)
    np.testing.assert_allclose(squared_error(logits, labels), expected, rtol=1e-6)
    assert float(squared_error(jnp.asarray(onehot, jnp.float32), labels).max()) == 0.0  # logits equal to the targets


def test_hinge_is_crammer_singer_not_weston_watkins():
    logits, labels = batch(scale=0.5)  # margins near 1: several classes violate it
    z = logits.astype(np.float64)
    others = np.where(np.eye(CLASSES)[labels] > 0, -np.inf, z)
    crammer_singer = np.maximum(0, 1 + others.max(-1) - at_label(z, labels))
    weston_watkins = np.maximum(0, 1 + others - at_label(z, labels)[:, None]).sum(-1)
    ours = np.asarray(hinge(logits, labels))
    np.testing.assert_allclose(ours, crammer_singer, rtol=1e-6, atol=1e-6)
    assert (weston_watkins > crammer_singer + 1e-3).any()
    confident = logits.copy()
    confident[np.arange(len(labels)), labels] += 20.0
    assert float(np.asarray(hinge(confident, labels)).max()) == 0.0


@pytest.mark.parametrize('epsilon,smoothing', [(1.0, 0.0), (-1.0, 0.0), (2.0, 0.1)])
def test_poly1_is_cross_entropy_plus_epsilon_times_one_minus_p(epsilon, smoothing):
    logits, labels = batch()
    targets = np.eye(CLASSES)[labels] * (1 - smoothing) + smoothing / CLASSES
    p = softmax64(logits)
    expected = -(targets * np.log(p)).sum(-1) + epsilon * (1 - (targets * p).sum(-1))
    ours = poly1(logits, labels, label_smoothing=smoothing, poly1_epsilon=epsilon)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)  # float32 cancellation where p_y nears 1
    np.testing.assert_allclose(poly1(logits, labels, poly1_epsilon=0.0), cross_entropy(logits, labels), rtol=1e-6,
                               atol=1e-6)


def test_cross_entropy_default_is_the_step_loss_it_always_was():
    """The default criterion is optax's softmax cross-entropy of the float32 logits, bitwise."""
    import optax

    logits, labels = batch()
    config = default_config()
    assert config.training.loss == 'cross_entropy'
    old = optax.softmax_cross_entropy(jnp.asarray(logits), jax.nn.one_hot(labels, CLASSES, dtype=jnp.float32))
    np.testing.assert_array_equal(np.asarray(make_loss(config)(jnp.asarray(logits), labels)), np.asarray(old))


@pytest.mark.parametrize('name', ['cross_entropy', 'poly1'])
def test_make_loss_binds_parameters_and_evaluation_drops_label_smoothing(name):
    logits, labels = batch()
    config = apply_overrides(default_config(), [('training.loss', name), ('training.label_smoothing', '0.2')])
    if name == 'poly1':
        apply_overrides(config, [('training.poly1_epsilon', '2.0')])
    assert loss_params(config)['label_smoothing'] == 0.2
    assert loss_params(config, evaluation=True)['label_smoothing'] == 0.0
    fn = LOSSES[name]
    rest = {'poly1_epsilon': 2.0} if name == 'poly1' else {}
    np.testing.assert_array_equal(make_loss(config)(logits, labels), fn(logits, labels, label_smoothing=0.2, **rest))
    np.testing.assert_array_equal(make_loss(config, evaluation=True)(logits, labels),
                                  fn(logits, labels, label_smoothing=0.0, **rest))


@pytest.mark.parametrize('overrides,message', [
    ([('training.focal_gamma', '3')], ("config.training.focal_gamma=3.0 is read by training.loss=focal; "
                                       "training.loss='cross_entropy' does not read it (leave it at 2.0)")),
    ([('training.loss', 'hinge'), ('training.label_smoothing', '0.1')],
     ("config.training.label_smoothing=0.1 is read by training.loss=cross_entropy/poly1; "
      "training.loss='hinge' does not read it (leave it at 0.0)")),
    ([('training.loss', 'focal'), ('training.focal_gamma', '-1')], 'config.training.focal_gamma=-1.0: must be >= 0'),
    ([('training.loss', 'poly1'), ('training.poly1_epsilon', '-1.5')], 'config.training.poly1_epsilon=-1.5: must be >= -1'),
    ([('optimizer.name', 'rmsprop'), ('optimizer.rms_decay', '1.0')], 'config.optimizer.rms_decay=1.0: must be in [0, 1)'),
    ([('optimizer.name', 'lars'), ('optimizer.trust_coefficient', '0')],
     'config.optimizer.trust_coefficient=0.0: must be > 0'),
    ([('optimizer.momentum', '0'), ('optimizer.nesterov', 'True')],
     'config.optimizer.nesterov=True: must be False with optimizer.momentum=0'),
])
def test_criterion_and_optimizer_parameters_are_checked_up_front(overrides, message):
    with pytest.raises(ConfigError) as raised:
        apply_overrides(default_config(), overrides)
    assert str(raised.value).startswith(message) and '\n' not in str(raised.value), str(raised.value)


@pytest.mark.parametrize('overrides', [
    [('training.loss', 'poly1'), ('training.label_smoothing', '0.1'), ('training.poly1_epsilon', '-1')],
    [('training.loss', 'focal'), ('training.focal_gamma', '0')],
    [('training.loss', 'squared_error')],
    [('optimizer.name', 'sgd'), ('optimizer.momentum', '0')],
    [('optimizer.name', 'rmsprop'), ('optimizer.centered', 'True'), ('optimizer.rms_decay', '0.99')],
    [('optimizer.name', 'lamb'), ('optimizer.weight_decay', '0.01')],
], ids=lambda o: '-'.join(v for _, v in o))
def test_each_criterion_and_optimizer_takes_its_own_parameters(overrides):
    config = apply_overrides(default_config(), overrides)  # no ConfigError
    key, name = overrides[0]
    assert get_key(config, key) == name
