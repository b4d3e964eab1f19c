"""AlexNet (Krizhevsky et al. 2012) and torchvision's version: layout fields, input size, init."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnzoo.models import count_params, create_model


def abstract(model, size):
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)


def output_shapes(model, size, modules):
    """Shapes of the outputs of the named submodules, from an abstract eval-mode pass."""
    capture = lambda module, method: module.name in modules and method == '__call__'  # noqa: E731
    _, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=False, mutable=['intermediates'], capture_intermediates=capture),
        abstract(model, size), jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
    return {name: state['intermediates'][name]['__call__'][0].shape for name in modules}


def kernels(params):
    return {name: p['kernel'].shape for name, p in params.items()}


def test_groups_halve_the_inputs_of_conv2_conv4_conv5():
    grouped = kernels(abstract(create_model('alexnet_2012', num_classes=10), 224)['params'])
    single = kernels(abstract(create_model('alexnet_2012', num_classes=10, groups=1), 224)['params'])
    for name in ('conv1', 'conv2', 'conv3', 'conv4', 'conv5'):
        h, w, inputs, outputs = single[name]
        halved = name in ('conv2', 'conv4', 'conv5')
        assert grouped[name] == (h, w, inputs // 2 if halved else inputs, outputs), name
    # 5*5*48*256 + 3*3*192*384 + 3*3*192*256 fewer weights than the single tower (62,378,344).
    ungrouped = create_model('alexnet_2012', num_classes=1000, groups=1)
    assert count_params(abstract(ungrouped, 224)['params']) == 60_965_224 + 307_200 + 663_552 + 442_368


def test_paper_maps_at_224_pixels():
    """conv1 padded by 2 gives Fig. 2's 55x55x96 at 224 pixels, and fc1 reads 6x6x256 = 9216."""
    model = create_model('alexnet_2012', num_classes=1000)
    shapes = output_shapes(model, 224, ('conv1', 'conv2', 'conv3', 'conv5', 'fc1'))
    assert shapes == {'conv1': (1, 55, 55, 96), 'conv2': (1, 27, 27, 256), 'conv3': (1, 13, 13, 384),
                      'conv5': (1, 13, 13, 256), 'fc1': (1, 4096)}
    assert abstract(model, 224)['params']['fc1']['kernel'].shape == (9216, 4096)


def test_torchvision_layout_names_and_shapes():
    params = abstract(create_model('alexnet', num_classes=1000), 224)['params']
    assert kernels(params) == {
        'conv1': (11, 11, 3, 64), 'conv2': (5, 5, 64, 192), 'conv3': (3, 3, 192, 384),
        'conv4': (3, 3, 384, 256), 'conv5': (3, 3, 256, 256),
        'fc1': (9216, 4096), 'fc2': (4096, 4096), 'head': (4096, 1000)}
    assert all('bias' in p for p in params.values())


@pytest.mark.parametrize('name', ['alexnet', 'alexnet_2012'])
def test_cifar_variant_keeps_a_3x3_map_for_the_classifier(name):
    model = create_model(name, num_classes=10, stem='cifar', head='cifar')
    params = abstract(model, 32)['params']
    width = model.widths[0]
    assert params['conv1']['kernel'].shape == (3, 3, 3, width)
    assert params['fc1']['kernel'].shape == (3 * 3 * 256, 4096)
    assert output_shapes(model, 32, ('head',))['head'] == (1, 10)


@pytest.fixture(scope='module')
def small():
    """A CIFAR AlexNet with grouped convolutions and narrow hidden layers, initialised once."""
    model = create_model('alexnet', num_classes=10, stem='cifar', head='cifar', hidden=16, groups=2)
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    return model, x, model.init(jax.random.key(0), x, train=False)


@pytest.mark.parametrize('dropout_at,fc1_varies', [('fc_inputs', True), ('fc_outputs', False)])
def test_dropout_site(small, dropout_at, fc1_varies):
    """torchvision drops fc1's input, the paper fc1's output: only the former changes fc1's output."""
    model, x, variables = small
    model = model.clone(dropout_at=dropout_at)

    def run(seed):
        logits, state = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(seed)},
                                    mutable=['intermediates'],
                                    capture_intermediates=lambda m, method: m.name == 'fc1')
        return logits, state['intermediates']['fc1']['__call__'][0]

    (logits_a, fc1_a), (logits_b, fc1_b) = run(1), run(2)
    assert not np.allclose(logits_a, logits_b)
    assert np.allclose(fc1_a, fc1_b) != fc1_varies
    np.testing.assert_array_equal(model.apply(variables, x, train=False), model.apply(variables, x, train=False))


def test_pytorch_default_init_bounds(small):
    """Weights and biases are U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in counting one group's inputs."""
    params = small[2]['params']
    fan_in = {'conv1': 3 * 3 * 3, 'conv2': 5 * 5 * 32, 'conv3': 3 * 3 * 192, 'conv4': 3 * 3 * 192, 'fc2': 16}
    for name, n in fan_in.items():
        bound = 1 / math.sqrt(n)
        for leaf in ('kernel', 'bias'):
            values = np.abs(np.asarray(params[name][leaf]))
            assert values.max() <= bound and values.max() > 0.8 * bound, (name, leaf)


def test_bad_fields_are_rejected():
    for fields in ({'stem': 'tiny'}, {'head': 'tiny'}, {'dropout_at': 'nowhere'}, {'widths': (64, 192)}):
        with pytest.raises(ValueError, match=next(iter(fields))):
            abstract(create_model('alexnet', num_classes=10, **fields), 224)
