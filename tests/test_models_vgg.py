"""VGG (Simonyan & Zisserman 2015, Table 1) and local response normalisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnzoo.models import count_params, create_model
from cnnzoo.models.normalization import LocalResponseNorm
from cnnzoo.models.vgg import CONFIGS, VGG, adaptive_avg_pool


def lrn_reference(x, size, alpha, beta, k, alpha_over_n):
    """Direct loop over channels, as written in Krizhevsky et al. 2012 §3.3 (window as PyTorch)."""
    out = np.empty_like(x)
    channels = x.shape[-1]
    a = alpha / size if alpha_over_n else alpha
    for c in range(channels):
        lo, hi = max(0, c - size // 2), min(channels, c + (size - 1) // 2 + 1)
        out[..., c] = x[..., c] / (k + a * np.sum(x[..., lo:hi] ** 2, axis=-1)) ** beta
    return out


@pytest.mark.parametrize('alpha_over_n', [False, True])
@pytest.mark.parametrize('size', [5, 4])
def test_lrn_matches_the_formula(alpha_over_n, size):
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 11)).astype(np.float32) * 30
    layer = LocalResponseNorm(size=size, alpha_over_n=alpha_over_n)
    got = layer.apply({}, jnp.asarray(x))
    np.testing.assert_allclose(got, lrn_reference(x, size, 1e-4, 0.75, 2.0, alpha_over_n), rtol=1e-5)


@pytest.mark.parametrize('h,w,out', [(1, 1, 7), (14, 14, 7), (10, 13, 7), (5, 3, 2)])
def test_adaptive_avg_pool_matches_pytorch_bins(h, w, out):
    x = np.random.default_rng(1).normal(size=(2, h, w, 3)).astype(np.float32)
    ref = np.empty((2, out, out, 3), np.float32)
    for i in range(out):
        for j in range(out):
            r0, r1 = (i * h) // out, -(-((i + 1) * h) // out)
            c0, c1 = (j * w) // out, -(-((j + 1) * w) // out)
            ref[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
    np.testing.assert_allclose(adaptive_avg_pool(jnp.asarray(x), out), ref, rtol=1e-5, atol=1e-6)


def shapes(name, **fields):
    model = create_model(name, num_classes=10, **fields)
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))


def test_configuration_c_has_1x1_convs_in_the_last_three_stages():
    params = shapes('vgg16_1x1')['params']
    kernels = [params[f'conv{i}']['kernel'].shape[:2] for i in range(1, 14)]
    assert [i + 1 for i, k in enumerate(kernels) if k == (1, 1)] == [7, 10, 13]
    assert sum(1 for c in CONFIGS['C'] if c != 'M') == 13


def test_depths_of_table_1():
    weight_layers = {k: sum(1 for c in v if c != 'M') + 3 for k, v in CONFIGS.items()}
    assert weight_layers == {'A': 11, 'B': 13, 'C': 16, 'D': 16, 'E': 19}


def test_bn_variants_have_batch_stats_and_plain_ones_none():
    assert 'batch_stats' not in shapes('vgg11') and 'batch_stats' in shapes('vgg11_bn')
    assert count_params(shapes('vgg11_lrn')['params']) == count_params(shapes('vgg11')['params'])


def test_cifar_head_is_one_linear_layer_from_512():
    params = shapes('vgg16_bn', head='cifar')['params']
    assert params['head']['kernel'].shape == (512, 10) and 'fc1' not in params


def test_dropout_acts_in_training_only():
    model = create_model('vgg11', num_classes=10, hidden=32)
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    a = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(1)})
    b = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(2)})
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(model.apply(variables, x, train=False), model.apply(variables, x, train=False))


def test_unknown_head():
    with pytest.raises(ValueError, match="head='tiny': choose one of imagenet, cifar"):
        create_model('vgg11', num_classes=10, head='tiny')  # refused when made, not when first traced
    with pytest.raises(ValueError, match='head'):
        VGG(config=CONFIGS['A'], head='tiny').init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
