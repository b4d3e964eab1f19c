"""cnnzoo's own layers against the ones they stand in for.

ReLU is jax.nn.relu bit for bit, value and gradient; only its HLO form differs. The select form
exists for XLA's CPU fusion (see ``cnnzoo.models.layers.relu``); these tests pin that the change of
form changed no number, and that the form is the one the speed-up relies on. BatchNorm is flax's
``nn.BatchNorm`` bit for bit by default, and PyTorch's running variance with ``running_var='unbiased'``.
"""

from functools import partial

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
        grad = lambda act: f(jax.vmap(jax.grad(lambda v: act(v).astype(jnp.float32))))(x)  # noqa: B023, E731 - used in this iteration
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
        kwargs = {'use_running_average': not train, 'momentum': 0.9, 'epsilon': 1e-5, 'dtype': dtype,
                  'param_dtype': jnp.float32}
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
    with pytest.raises(ValueError, match=r"running_var must be one of .*'biased', 'unbiased'.*got 'torch'"):
        BatchNorm(use_running_average=False, running_var='torch').init(jax.random.PRNGKey(0), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="bn_running_var='torch': choose one of biased, unbiased"):
        create_model('resnet20', num_classes=10, bn_running_var='torch').init(
            jax.random.PRNGKey(0), jnp.ones((1, 32, 32, 3)), train=False)


def test_batch_norm_refuses_a_mask_in_one_line_and_takes_mask_none():
    bn, x = BatchNorm(use_running_average=False), jnp.arange(6.0).reshape(2, 3)
    variables = bn.init(jax.random.PRNGKey(0), x)
    unmasked, _ = bn.apply(variables, x, mutable=['batch_stats'])
    passed_none, _ = bn.apply(variables, x, mask=None, mutable=['batch_stats'])
    np.testing.assert_array_equal(passed_none, unmasked)
    with pytest.raises(ValueError, match='takes no mask'):
        bn.apply(variables, x, mask=jnp.ones((2, 3), bool), mutable=['batch_stats'])


# (input shape, kernel shape, stride, padding): each form of layers.conv_general_dilated (other
# convolutions go to lax.conv_general_dilated unchanged).
CONV_CASES = [
    ((4, 9, 9, 12), (3, 3, 1, 12), 1, 1),  # depthwise, shifted sum on the CPU
    ((4, 9, 9, 12), (3, 3, 1, 12), 2, 1),  # depthwise, strided, odd size
    ((4, 9, 9, 12), (1, 1, 12, 7), 1, 0),  # 1x1, matrix product on the CPU
    ((4, 9, 9, 12), (1, 1, 12, 7), 2, 0),  # 1x1 projection shortcut, strided, odd size
    ((4, 2, 2, 12), (3, 3, 12, 7), 1, 1),  # kernel larger than the image: im2col product
    ((5, 9, 9, 6), (3, 3, 6, 7), 1, 1),  # 3x3: XLA's, weight gradient by chunks on the CPU
    ((4, 9, 9, 6), (3, 3, 6, 7), 2, 1),  # 3x3, strided, odd size
    ((3, 11, 11, 4), (5, 5, 4, 3), 2, 2),  # 5x5, strided
]


def _conv(conv_fn, x, w, stride, pad):
    dims = jax.lax.conv_dimension_numbers(x.shape, w.shape, ('NHWC', 'HWIO', 'NHWC'))
    return conv_fn(x, w, (stride, stride), ((pad, pad), (pad, pad)), dimension_numbers=dims,
                   feature_group_count=x.shape[-1] // w.shape[2])


@pytest.mark.parametrize('x_shape, w_shape, stride, pad', CONV_CASES)
def test_conv_forms_equal_xla_convolution_in_value_and_gradient(x_shape, w_shape, stride, pad):
    from cnnzoo.models.layers import conv_general_dilated

    x = jax.random.normal(jax.random.PRNGKey(0), x_shape)
    w = jax.random.normal(jax.random.PRNGKey(1), w_shape)
    cot = jax.random.normal(jax.random.PRNGKey(2), _conv(jax.lax.conv_general_dilated, x, w, stride, pad).shape)

    @partial(jax.jit, static_argnums=0)
    def value_and_grads(conv_fn):
        out, vjp = jax.vjp(lambda x, w: _conv(conv_fn, x, w, stride, pad), x, w)
        return (out, *vjp(cot))

    for ours, xla in zip(value_and_grads(conv_general_dilated), value_and_grads(jax.lax.conv_general_dilated),
                         strict=True):
        assert ours.shape == xla.shape
        np.testing.assert_allclose(np.asarray(ours), np.asarray(xla), rtol=1e-5, atol=1e-4)


def test_conv_forms_on_the_cpu_leave_no_grouped_or_1x1_convolution():
    """On the CPU the depthwise and 1x1 layers compile to no convolution at all (the slow kernels
    the forms stand in for), in the forward pass and in the gradients."""
    from cnnzoo.models.layers import conv_general_dilated

    assert jax.default_backend() == 'cpu'
    for x_shape, w_shape, stride, pad in CONV_CASES[:4]:  # the CPU-only forms
        x, w = jnp.ones(x_shape), jnp.ones(w_shape)
        loss = lambda x, w: jnp.sum(_conv(conv_general_dilated, x, w, stride, pad) ** 2)  # noqa: B023, E731
        hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, w).compile().as_text()
        assert 'convolution(' not in hlo, (x_shape, w_shape)
    x, w = jnp.ones((4, 9, 9, 12)), jnp.ones((3, 3, 12, 8))
    assert 'convolution(' in jax.jit(lambda x, w: _conv(conv_general_dilated, x, w, 1, 1)).lower(x, w).compile().as_text()


@pytest.mark.parametrize('chunk_bytes', [1, 9 * 9 * 9 * 6 * 4 * 2, 2 ** 30])  # one image, two, the whole batch
@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_weight_gradient_by_chunks_is_xlas(monkeypatch, chunk_bytes, dtype):
    """The CPU's weight gradient (a sum over chunks of the batch of patches x output gradient) equals
    XLA's to float32 rounding, for any chunk size, including one that does not divide the batch
    evenly into the byte budget (6 images in chunks of 1, 2 or 3, or all 6); in bfloat16 it keeps the dtype."""
    from cnnzoo.models import layers

    monkeypatch.setattr(layers, 'WEIGHT_GRAD_CHUNK_BYTES', chunk_bytes)
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 9, 9, 6)).astype(dtype)
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 6, 7)).astype(dtype)
    cot = jax.random.normal(jax.random.PRNGKey(2), (6, 9, 9, 7)).astype(dtype)

    def grads(conv_fn):
        return jax.jit(jax.vjp(lambda x, w: _conv(conv_fn, x, w, 1, 1), x, w)[1])(cot)

    for ours, xla in zip(grads(layers.conv_general_dilated), grads(jax.lax.conv_general_dilated), strict=True):
        assert ours.dtype == xla.dtype == dtype
        tol = 1e-5 if dtype == jnp.float32 else 2e-2
        np.testing.assert_allclose(np.asarray(ours, np.float32), np.asarray(xla, np.float32), rtol=tol,
                                   atol=tol * float(jnp.max(jnp.abs(xla.astype(jnp.float32)))))


def test_weight_gradient_on_the_cpu_is_no_convolution():
    """On the CPU a 3x3 layer's forward and input gradient are XLA's convolutions and its weight
    gradient is not one (two convolutions in the compiled gradient, not three)."""
    from cnnzoo.models.layers import conv_general_dilated

    assert jax.default_backend() == 'cpu'
    x, w = jnp.ones((8, 9, 9, 6)), jnp.ones((3, 3, 6, 7))
    def loss(x, w):
        return jnp.sum(_conv(conv_general_dilated, x, w, 1, 1) ** 2)

    hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, w).compile().as_text()
    assert hlo.count('convolution(') == 2
    reference = jax.jit(jax.grad(lambda x, w: jnp.sum(_conv(jax.lax.conv_general_dilated, x, w, 1, 1) ** 2),
                                 argnums=(0, 1))).lower(x, w).compile().as_text()
    assert reference.count('convolution(') == 3
