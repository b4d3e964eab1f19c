"""GoogLeNet (Szegedy et al. 2015, Table 1): parameter counts from the table, auxiliary heads,
the third branch's kernels, map sizes, and PyTorch's ceil-mode max-pool."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnzoo.models import count_params, create_model
from cnnzoo.models.googlenet import TABLE1
from cnnzoo.models.layers import pooled_size, torch_max_pool
from cnnzoo.training import AUX_COLLECTION, aux_loss, cross_entropy

MODULES = [(name, widths) for name, widths in TABLE1 if not isinstance(widths, int)]


def abstract(model, size=32):
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)


def params_of(size=32, num_classes=1000, **fields):
    return abstract(create_model('googlenet', num_classes=num_classes, **fields), size)['params']


def basic_conv(inputs, outputs, kernel):
    return kernel * kernel * inputs * outputs + 2 * outputs  # bias-free conv + BN scale and offset


def googlenet_count_by_hand(num_classes, kernel5=3):
    stem = basic_conv(3, 64, 7) + basic_conv(64, 64, 1) + basic_conv(64, 192, 3)
    inputs, modules = 192, 0
    for _, (n1, r3, n3, r5, n5, proj) in MODULES:
        modules += (basic_conv(inputs, n1, 1) + basic_conv(inputs, r3, 1) + basic_conv(r3, n3, 3)
                    + basic_conv(inputs, r5, 1) + basic_conv(r5, n5, kernel5) + basic_conv(inputs, proj, 1))
        inputs = n1 + n3 + n5 + proj
    assert inputs == 1024
    return stem + modules + 1024 * num_classes + num_classes


def aux_count(inputs, num_classes):
    return basic_conv(inputs, 128, 1) + 2048 * 1024 + 1024 + 1024 * num_classes + num_classes


def test_counts_follow_from_table_1():
    without_aux = googlenet_count_by_hand(1000)
    assert without_aux == 6_624_904  # torchvision.models.googlenet's published count
    assert count_params(params_of(aux_logits=False)) == without_aux
    # The heads read 4a (512 channels) and 4d (528 channels).
    assert (aux_count(512, 1000), aux_count(528, 1000)) == (3_188_968, 3_191_016)
    assert count_params(params_of()) == without_aux + 3_188_968 + 3_191_016 == 13_004_888


def test_no_aux_parameters_or_statistics_without_aux_logits():
    variables = abstract(create_model('googlenet', num_classes=10, aux_logits=False))
    assert not [k for k in variables['params'] if k.startswith('aux')]
    assert not [k for k in variables['batch_stats'] if k.startswith('aux')]
    params = params_of()
    assert params['aux1']['conv']['conv']['kernel'].shape == (1, 1, 512, 128)
    assert params['aux2']['conv']['conv']['kernel'].shape == (1, 1, 528, 128)


def test_branch3_kernels():
    torchvision = params_of(aux_logits=False)
    paper = params_of(aux_logits=False, branch3='5x5')
    double = params_of(aux_logits=False, branch3='double_3x3')
    for name, (_, _, _, r5, n5, _) in MODULES:
        assert torchvision[name]['branch3_1']['conv']['kernel'].shape == (3, 3, r5, n5)
        assert paper[name]['branch3_1']['conv']['kernel'].shape == (5, 5, r5, n5)
        assert double[name]['branch3_2']['conv']['kernel'].shape == (3, 3, n5, n5)
        assert 'branch3_2' not in torchvision[name]
    assert count_params(paper) == googlenet_count_by_hand(1000, kernel5=5)
    extra = sum((5 * 5 - 3 * 3) * r5 * n5 for _, (_, _, _, r5, n5, _) in MODULES)
    assert count_params(paper) - count_params(torchvision) == extra


def module_inputs(size, **fields):
    """Spatial size of each Inception module's input, from an abstract pass."""
    model = create_model('googlenet', num_classes=10, aux_logits=False, **fields)
    names = [name for name, _ in MODULES]
    capture = lambda module, method: module.name in names and method == '__call__'  # noqa: E731
    _, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=False, mutable=['intermediates'], capture_intermediates=capture),
        abstract(model, size), jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
    return {name[len('inception'):]: state['intermediates'][name]['__call__'][0].shape[1] for name in names}


def test_map_sizes_imagenet_and_cifar():
    # torchvision's comments: 28x28 at 3a/3b, 14x14 at 4a-4e, 7x7 at 5a/5b for 224 pixels.
    assert module_inputs(224) == {'3a': 28, '3b': 28, '4a': 14, '4b': 14, '4c': 14, '4d': 14, '4e': 14,
                                  '5a': 7, '5b': 7}
    assert module_inputs(32, stem='cifar') == {'3a': 32, '3b': 32, '4a': 16, '4b': 16, '4c': 16, '4d': 16,
                                               '4e': 16, '5a': 8, '5b': 8}


# Two narrow modules named as in Table 1, so that the auxiliary mechanism compiles quickly; the
# full network's heads get gradients in test_models.py and train in test_zoo_training.py.
TINY = (('inception4a', (4, 4, 4, 2, 2, 2)), ('maxpool4', 2), ('inception4d', (4, 4, 4, 2, 2, 2)))


def numpy_variables(model, size):
    """Random parameters and unit running statistics in the shapes of ``model.init``, made with numpy:
    compiling jax's initialisers costs far more than running this small network."""
    rng = np.random.default_rng(0)
    shapes = abstract(model, size)
    params = jax.tree_util.tree_map(lambda s: jnp.asarray(rng.normal(0, 0.3, s.shape), jnp.float32),
                                    shapes['params'])
    stats = jax.tree_util.tree_map_with_path(
        lambda path, s: jnp.full(s.shape, 1.0 if path[-1].key == 'var' else 0.0), shapes['batch_stats'])
    return {'params': params, 'batch_stats': stats}


def test_aux_heads_are_sown_in_training_only_with_weight_0_3():
    model = create_model('googlenet', num_classes=10, layout=TINY, stem='cifar')
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
    labels = jnp.array([3, 7])
    variables = numpy_variables(model, 16)
    assert {'aux1', 'aux2'} <= set(variables['params'])

    # Jitted: compiling the training pass once is three times faster than running it op by op.
    train = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats', AUX_COLLECTION],
                                             rngs={'dropout': jax.random.key(2)}))
    _, state = train(variables, x)
    sown = state[AUX_COLLECTION]
    assert set(sown) == {'aux1', 'aux2'}
    heads = [sown[name]['output'][0] for name in ('aux1', 'aux2')]
    np.testing.assert_allclose([h['weight'] for h in heads], [0.3, 0.3])
    assert all(h['logits'].shape == (2, 10) and h['logits'].dtype == jnp.float32 for h in heads)
    expected = sum(0.3 * cross_entropy(h['logits'], labels).mean() for h in heads)
    np.testing.assert_allclose(aux_loss(sown, labels), expected, rtol=1e-6)

    _, state = model.apply(variables, x, train=False, mutable=['batch_stats', AUX_COLLECTION])
    assert AUX_COLLECTION not in state
    # At evaluation the heads do not take part: the logits equal those of the net without them.
    plain = model.clone(aux_logits=False)
    without = {c: {k: v for k, v in tree.items() if not k.startswith('aux')} for c, tree in variables.items()}
    np.testing.assert_array_equal(model.apply(variables, x, train=False), plain.apply(without, x, train=False))


def test_aux_placement_is_a_field():
    model = create_model('googlenet', num_classes=10, layout=TINY, stem='cifar', aux_after=('inception4d',))
    variables = abstract(model, 16)
    _, state = jax.eval_shape(
        lambda v: model.apply(v, jnp.zeros((1, 16, 16, 3)), train=True, mutable=['batch_stats', AUX_COLLECTION],
                              rngs={'dropout': jax.random.key(2)}), variables)
    assert list(state[AUX_COLLECTION]) == ['aux1']
    assert state[AUX_COLLECTION]['aux1']['output'][0]['logits'].shape == (1, 10)
    assert variables['params']['aux1']['conv']['conv']['kernel'].shape[2] == 12  # 4d's output: 4+4+2+2
    with pytest.raises(ValueError, match='inception9z'):
        abstract(create_model('googlenet', num_classes=10, aux_after=('inception9z',)))


def max_pool_reference(x, window, stride, ceil_mode):
    """MaxPool2d without padding, window by window, with PyTorch's output size."""
    h, w = x.shape[1:3]
    oh, ow = pooled_size(h, window, stride, 0, ceil_mode), pooled_size(w, window, stride, 0, ceil_mode)
    out = np.empty((x.shape[0], oh, ow, x.shape[3]), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = x[:, i * stride:i * stride + window, j * stride:j * stride + window].max(axis=(1, 2))
    return out


POOL_CASES = [(h, w, window, ceil_mode) for h, w in [(112, 112), (13, 14), (7, 7), (4, 4), (2, 3)]
              for window in (2, 3) for ceil_mode in (True, False)
              if ceil_mode or min(h, w) >= window]  # without ceil mode a 2-pixel row holds no 3-window


@pytest.mark.parametrize('h,w,window,ceil_mode', POOL_CASES)
def test_ceil_mode_max_pool_matches_the_window_loop(h, w, window, ceil_mode):
    x = np.random.default_rng(0).normal(size=(2, h, w, 3)).astype(np.float32)
    got = torch_max_pool(jnp.asarray(x), window, 2, ceil_mode=ceil_mode)
    np.testing.assert_array_equal(got, max_pool_reference(x, window, 2, ceil_mode))


def test_pooled_sizes_of_torchvision_googlenet():
    assert [pooled_size(n, 3, 2, ceil_mode=True) for n in (112, 56, 28)] == [56, 28, 14]
    assert pooled_size(14, 2, 2, ceil_mode=True) == 7
    assert pooled_size(13, 3, 2, ceil_mode=True) == 6 and pooled_size(14, 3, 2, ceil_mode=True) == 7
    assert pooled_size(14, 3, 2) == 6
    # Ceil mode drops a last window that would start in the right padding: for 5 pixels padded by 1,
    # 2x2/2 windows start at 0, 2, 4 and 6 of the padded row, and 6 is padding (PyTorch gives 3).
    assert pooled_size(5, 2, 2, 1, ceil_mode=True) == 3
    assert pooled_size(5, 3, 2, 1, ceil_mode=True) == 3
