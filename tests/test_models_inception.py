"""Inception v3 (Szegedy et al. 2016, torchvision's layout): auxiliary head, sizes, CIFAR variant.

Everything here is traced with ``jax.eval_shape`` (nothing is compiled), except the pooling check;
the registry-wide tests run the network itself.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnzoo.models import cifar_fields, count_params, create_model, min_input_size
from cnnzoo.models.inception import MIXED, Branch, InceptionModule
from cnnzoo.training import AUX_COLLECTION

# AuxLogits: conv0 1x1 768->128 + BN, conv1 5x5 128->768 + BN, fc 768->1000 (torchvision's InceptionAux).
AUX_PARAMS = (768 * 128 + 2 * 128) + (5 * 5 * 128 * 768 + 2 * 768) + (768 * 1000 + 1000)


def abstract_init(model, size, batch=2):
    """``(logits, variables)`` shapes of ``model.init_with_output`` at ``size`` x ``size``."""
    x = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x, train=False), x)


def shapes(tree):
    return jax.tree_util.tree_map(lambda a: a.shape, tree)


def train_apply(model, variables, size, batch=2):
    """Traces a train-mode ``apply``; returns the main logits' shape and the sown collection as sown
    (Python values, e.g. the loss weight, are captured at trace time)."""
    captured = {}

    def run(variables, x):
        out, updates = model.apply(variables, x, train=True, mutable=['batch_stats', AUX_COLLECTION],
                                   rngs={'dropout': jax.random.key(1)})
        captured.update(updates.get(AUX_COLLECTION, {}))
        return out

    out = jax.eval_shape(run, variables, jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32))
    return out.shape, captured


def test_aux_head_is_sown_in_train_mode_only_with_weight_0_4():
    model = create_model('inception_v3', num_classes=1000)
    _, variables = abstract_init(model, 299)
    assert 'AuxLogits' in variables['params'] and AUX_COLLECTION not in variables  # built, not sown, by init

    out, sown = train_apply(model, variables, 299)
    assert out == (2, 1000)
    (entry,) = sown['aux_logits']
    assert entry['logits'].shape == (2, 1000) and entry['logits'].dtype == jnp.float32
    assert entry['weight'] == 0.4

    _, updates = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=False, mutable=[AUX_COLLECTION]), variables,
        jax.ShapeDtypeStruct((2, 299, 299, 3), jnp.float32))
    assert not updates.get(AUX_COLLECTION)

    _, sown = train_apply(create_model('inception_v3', num_classes=1000, aux_weight=0.25), variables, 299)
    assert sown['aux_logits'][0]['weight'] == 0.25


def test_aux_logits_false_removes_exactly_the_aux_head():
    with_aux = abstract_init(create_model('inception_v3', num_classes=1000), 299)[1]
    without = abstract_init(create_model('inception_v3', num_classes=1000, aux_logits=False), 299)[1]
    assert count_params(with_aux['params']) - count_params(without['params']) == AUX_PARAMS == 3_326_696
    assert count_params(without['params']) == 27_161_264 - 3_326_696 == 23_834_568
    assert count_params(with_aux['params']['AuxLogits']) == AUX_PARAMS
    for collection in ('params', 'batch_stats'):
        rest = {k: v for k, v in with_aux[collection].items() if k != 'AuxLogits'}
        assert shapes(rest) == shapes(without[collection])
    _, sown = train_apply(create_model('inception_v3', num_classes=1000, aux_logits=False), without, 75)
    assert not sown


def test_layout_maps_and_widths_are_torchvisions():
    """The map after every stem layer and module, as commented in torchvision's Inception3._forward."""
    model = create_model('inception_v3', num_classes=1000)
    variables = abstract_init(model, 299)[1]
    stem_and_modules = ('Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'Conv2d_3b_1x1', 'Conv2d_4a_3x3',
                        *(name for name, _ in MIXED))
    capture = lambda module, method: module.name in stem_and_modules and method == '__call__'  # noqa: E731
    _, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=False, mutable=['intermediates'], capture_intermediates=capture),
        variables, jax.ShapeDtypeStruct((1, 299, 299, 3), jnp.float32))
    got = {name: state['intermediates'][name]['__call__'][0].shape[1:] for name in stem_and_modules}
    assert got == {
        'Conv2d_1a_3x3': (149, 149, 32), 'Conv2d_2a_3x3': (147, 147, 32), 'Conv2d_2b_3x3': (147, 147, 64),
        'Conv2d_3b_1x1': (73, 73, 80), 'Conv2d_4a_3x3': (71, 71, 192),
        'Mixed_5b': (35, 35, 256), 'Mixed_5c': (35, 35, 288), 'Mixed_5d': (35, 35, 288),
        'Mixed_6a': (17, 17, 768), 'Mixed_6b': (17, 17, 768), 'Mixed_6c': (17, 17, 768),
        'Mixed_6d': (17, 17, 768), 'Mixed_6e': (17, 17, 768),
        'Mixed_7a': (8, 8, 1280), 'Mixed_7b': (8, 8, 2048), 'Mixed_7c': (8, 8, 2048),
    }


def test_submodule_names_and_kernels_follow_torchvision():
    params = abstract_init(create_model('inception_v3', num_classes=1000), 299)[1]['params']
    kinds = {
        'Mixed_5b': ['branch1x1', 'branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3', 'branch5x5_1',
                     'branch5x5_2', 'branch_pool'],
        'Mixed_6a': ['branch3x3', 'branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'],
        'Mixed_6b': ['branch1x1', 'branch7x7_1', 'branch7x7_2', 'branch7x7_3', 'branch7x7dbl_1', 'branch7x7dbl_2',
                     'branch7x7dbl_3', 'branch7x7dbl_4', 'branch7x7dbl_5', 'branch_pool'],
        'Mixed_7a': ['branch3x3_1', 'branch3x3_2', 'branch7x7x3_1', 'branch7x7x3_2', 'branch7x7x3_3',
                     'branch7x7x3_4'],
        'Mixed_7b': ['branch1x1', 'branch3x3_1', 'branch3x3_2a', 'branch3x3_2b', 'branch3x3dbl_1',
                     'branch3x3dbl_2', 'branch3x3dbl_3a', 'branch3x3dbl_3b', 'branch_pool'],
    }
    for module, names in kinds.items():
        assert sorted(params[module]) == names, module
    assert sorted(params['Mixed_5b']['branch1x1']) == ['bn', 'conv']  # torchvision's BasicConv2d.conv/.bn
    kernel = lambda *path: params[path[0]][path[1]]['conv']['kernel'].shape  # noqa: E731
    assert kernel('Mixed_6b', 'branch7x7_2') == (1, 7, 128, 128)
    assert kernel('Mixed_6b', 'branch7x7_3') == (7, 1, 128, 192)
    assert kernel('Mixed_7b', 'branch3x3_2b') == (3, 1, 384, 384)
    assert kernel('AuxLogits', 'conv1') == (5, 5, 128, 768)
    assert params['fc']['kernel'].shape == (2048, 1000) and params['AuxLogits']['fc']['kernel'].shape == (768, 1000)
    leaves = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    assert sum(leaf.endswith("['conv']['kernel']") for leaf in leaves) == 96  # torchvision's 94 + the aux head's 2
    assert not any("['conv']['bias']" in leaf for leaf in leaves)


def test_smallest_inputs():
    assert min_input_size('inception_v3') == 299 and min_input_size('inception_v3', cifar=True) == 32
    plain = create_model('inception_v3', num_classes=10, aux_logits=False)
    assert abstract_init(plain, 75)[0].shape == (2, 10)
    with pytest.raises(ValueError, match=r'too small: Mixed_7a/branch3x3_2 has a 3x3 window but a 2x2 map'):
        abstract_init(plain, 74)

    full = create_model('inception_v3', num_classes=10)
    logits, variables = abstract_init(full, 299)
    assert logits.shape == (2, 10)
    with pytest.raises(ValueError, match=r'auxiliary head.*16x16 Mixed_6e map into 4x4') as error:
        abstract_init(full, 298)
    assert str(error.value).splitlines()[0].endswith('at least 31x31')  # one line, whatever JAX appends
    # As torchvision: the aux head is not run at evaluation, so a model initialised at 299 evaluates
    # at 75, while training needs 299.
    eval_out = jax.eval_shape(lambda v, x: full.apply(v, x, train=False), variables,
                              jax.ShapeDtypeStruct((2, 75, 75, 3), jnp.float32))
    assert eval_out.shape == (2, 10)
    with pytest.raises(ValueError, match='auxiliary head'):
        train_apply(full, variables, 75)


def test_cifar_variant_at_32_pixels():
    fields = cifar_fields('inception_v3')
    assert fields == {'stem': 'cifar', 'aux_pool': (3, 3)}
    model = create_model('inception_v3', num_classes=10, **fields)
    logits, variables = abstract_init(model, 32, batch=3)
    assert logits.shape == (3, 10)
    out, sown = train_apply(model, variables, 32, batch=3)
    assert out == (3, 10) and sown['aux_logits'][0]['logits'].shape == (3, 10)
    # Same parameter shapes as the ImageNet layout: only strides, paddings and pools differ.
    imagenet = abstract_init(create_model('inception_v3', num_classes=10), 299)[1]
    assert shapes(variables) == shapes(imagenet)
    assert abstract_init(model, 31)[0].shape == (2, 10)
    with pytest.raises(ValueError, match='auxiliary head'):
        abstract_init(model, 30)
    # The CIFAR stem alone keeps torchvision's aux pool, which needs a 17x17 map: a clear error.
    with pytest.raises(ValueError, match=r'aux_pool=\(3, 3\)'):
        abstract_init(create_model('inception_v3', num_classes=10, stem='cifar'), 32)


def test_pool_branch_averages_with_the_padding_counted():
    """F.avg_pool2d(3, 1, padding=1) divides by 9 at the border too (count_include_pad)."""
    module = InceptionModule((Branch('pool_only', pool='avg'),))
    out = np.asarray(module.apply({}, jnp.ones((1, 4, 4, 2)), train=False))
    in_window = np.array([[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]])
    np.testing.assert_allclose(out[0, :, :, 0], in_window / 9, rtol=1e-6)


def test_bad_fields_are_rejected():
    with pytest.raises(ValueError, match='stem'):
        abstract_init(create_model('inception_v3', num_classes=10, stem='tiny'), 299)
    with pytest.raises(ValueError, match="aux_after='Mixed_6f'"):
        abstract_init(create_model('inception_v3', num_classes=10, aux_after='Mixed_6f'), 299)
