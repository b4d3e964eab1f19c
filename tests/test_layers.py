"""cnnzoo's own layers against the ones they stand in for.

ReLU is jax.nn.relu bit for bit, value and gradient; only its HLO form differs. The select form
exists for XLA's CPU fusion (see ``cnnzoo.models.layers.relu``); these tests pin that the change of
form changed no number, and that the form is the one the speed-up relies on. BatchNorm is flax's
``nn.BatchNorm`` bit for bit by default, and PyTorch's running variance with ``running_var='unbiased'``.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnzoo.models import create_model
from cnnzoo.models.layers import ACTIVATIONS, relu
from cnnzoo.models.normalization import BatchNorm

SPECIAL = [-0.0, 0.0, -1.0, 1.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 3.5, -2.25, 1e-38, -1e-38]


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_relu_is_jax_nn_relu_bitwise(dtype):
    x = jnp.concatenate([jnp.asarray(SPECIAL, jnp.float32),
                         jax.random.normal(jax.random.PRNGKey(0), (1000,))]).astype(dtype)
    bits = np.uint16 if dtype == jnp.bfloat16 else np.uint32
    for f in (lambda v: v, jax.jit):  # eager and compiled
        np.testing.assert_array_equal(np.asarray(f(relu)(x)).view(bits), np.asarray(f(jax.nn.relu)(x)).view(bits))
        grad = lambda act: f(jax.vmap(jax.grad(lambda v: act(v).astype(jnp.float32))))(x)  # noqa: E731
        np.testing.assert_array_equal(np.asarray(grad(relu), np.float32), np.asarray(grad(jax.nn.relu), np.float32))
    assert ACTIVATIONS['relu'] is relu


def test_relu_lowers_to_a_select_not_a_max():
    text = jax.jit(relu).lower(jnp.ones((4, 8), jnp.float32)).as_text()
    assert 'select' in text and 'maximum' not in text


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_batch_norm_default_is_flax_bit_for_bit(dtype):
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 5, 5, 3)) * 3 + 1
    variables = {'params': {'scale': jnp.arange(1.0, 4.0), 'bias': jnp.array([0.5, -1.0, 2.0])},
                 'batch_stats': {'mean': jnp.array([0.1, 0.2, 0.3]), 'var': jnp.array([1.5, 2.0, 0.5])}}
    for train in (True, False):
        kwargs = dict(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                      param_dtype=jnp.float32)
        a, ua = BatchNorm(**kwargs).apply(variables, x, mutable=['batch_stats'])
        b, ub = nn.BatchNorm(**kwargs).apply(variables, x, mutable=['batch_stats'])
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
        for leaf_a, leaf_b in zip(jax.tree_util.tree_leaves(ua), jax.tree_util.tree_leaves(ub), strict=True):
            np.testing.assert_array_equal(leaf_a, leaf_b)
        if train:  # the running statistics really moved
            assert not np.allclose(ua['batch_stats']['var'], variables['batch_stats']['var'])


def test_batch_norm_unbiased_running_variance_is_pytorchs():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 5, 5, 3)) * 3 + 1
    n = 4 * 5 * 5
    biased = BatchNorm(use_running_average=False, momentum=0.9)
    unbiased = BatchNorm(use_running_average=False, momentum=0.9, running_var='unbiased')
    variables = biased.init(jax.random.PRNGKey(1), x)
    out_b, up_b = biased.apply(variables, x, mutable=['batch_stats'])
    out_u, up_u = unbiased.apply(variables, x, mutable=['batch_stats'])
    np.testing.assert_array_equal(out_b, out_u)  # the normalisation itself is the same
    np.testing.assert_array_equal(up_b['batch_stats']['mean'], up_u['batch_stats']['mean'])
    batch_var = np.var(np.asarray(x, np.float64), axis=(0, 1, 2))
    np.testing.assert_allclose(up_b['batch_stats']['var'], 0.9 + 0.1 * batch_var, rtol=1e-5)
    np.testing.assert_allclose(up_u['batch_stats']['var'], 0.9 + 0.1 * batch_var * n / (n - 1), rtol=1e-5)


def test_batch_norm_running_var_choice_is_checked():
    with pytest.raises(ValueError, match="running_var must be one of .*'biased', 'unbiased'.*got 'torch'"):
        BatchNorm(use_running_average=False, running_var='torch').init(jax.random.PRNGKey(0), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="bn_running_var='torch': choose one of biased, unbiased"):
        create_model('resnet20', num_classes=10, bn_running_var='torch').init(
            jax.random.PRNGKey(0), jnp.ones((1, 32, 32, 3)), train=False)
