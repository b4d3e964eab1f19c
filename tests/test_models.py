"""Tests of cnnzoo.models: every registered model, the registry, and the ResNet ablation fields."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import EXHAUSTIVE, distinct_networks, registry_params, shortened

from cnnzoo.models import (
    ACTIVATIONS,
    BasicBlock,
    Bottleneck,
    cifar_fields,
    count_params,
    create_model,
    get_activation,
    list_models,
    min_input_size,
    register_model,
    registry,
)
from cnnzoo.models.registry import natural_key
from cnnzoo.training import AUX_COLLECTION

IMAGENET_MODELS = ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'plain18', 'plain34')

# name -> (num_classes, trainable parameters, where the number comes from).
_TABLE6 = 'He et al. 2016 Table 6 rounds it to'
_TV = 'torchvision.models'
PINNED_PARAMS = {
    'resnet20': (10, 269_722, f'{_TABLE6} 0.27M; checked by hand in the ResNet-20 test below'),
    'resnet32': (10, 464_154, f'{_TABLE6} 0.46M'),
    'resnet44': (10, 658_586, f'{_TABLE6} 0.66M'),
    'resnet56': (10, 853_018, f'{_TABLE6} 0.85M'),
    'resnet110': (10, 1_727_962, f'{_TABLE6} 1.7M'),
    'resnet1202': (10, 19_421_274, f'{_TABLE6} 19.4M'),
    # Option A has no parameters, so a plain CIFAR net has exactly its ResNet's count.
    'plain20': (10, 269_722, 'equal to resnet20 (option A adds no parameters)'),
    'plain32': (10, 464_154, 'equal to resnet32'),
    'plain44': (10, 658_586, 'equal to resnet44'),
    'plain56': (10, 853_018, 'equal to resnet56'),
    'plain110': (10, 1_727_962, 'equal to resnet110'),
    'resnet18': (1000, 11_689_512, f'{_TV}.resnet18'),
    'resnet34': (1000, 21_797_672, f'{_TV}.resnet34'),
    'resnet50': (1000, 25_557_032, f'{_TV}.resnet50'),
    'resnet101': (1000, 44_549_160, f'{_TV}.resnet101'),
    'resnet152': (1000, 60_192_808, f'{_TV}.resnet152'),
    # The three option-B projections (1x1 conv + BN) at 64->128, 128->256, 256->512 channels:
    # 8192+256 + 32768+512 + 131072+1024 = 173,824 fewer than the ResNet.
    'plain18': (1000, 11_689_512 - 173_824, 'resnet18 minus its projections (11,515,688)'),
    'plain34': (1000, 21_797_672 - 173_824, 'resnet34 minus its projections (21,623,848)'),
    # VGG, ImageNet head (torchvision's layout): torchvision.models' published counts.
    'vgg11': (1000, 132_863_336, f'{_TV}.vgg11'),
    'vgg11_bn': (1000, 132_868_840, f'{_TV}.vgg11_bn'),
    'vgg13': (1000, 133_047_848, f'{_TV}.vgg13'),
    'vgg13_bn': (1000, 133_053_736, f'{_TV}.vgg13_bn'),
    'vgg16': (1000, 138_357_544, f'{_TV}.vgg16'),
    'vgg16_bn': (1000, 138_365_992, f'{_TV}.vgg16_bn'),
    'vgg19': (1000, 143_667_240, f'{_TV}.vgg19'),
    'vgg19_bn': (1000, 143_678_248, f'{_TV}.vgg19_bn'),
    # LRN has no parameters: A-LRN equals A (Simonyan & Zisserman Table 2: 133M for both).
    'vgg11_lrn': (1000, 132_863_336, 'equal to vgg11 (LRN has no parameters)'),
    'vgg11_lrn_bn': (1000, 132_868_840, 'equal to vgg11_bn'),
    # C is D with the third 3x3 conv of stages 3-5 made 1x1: 8 * (256*256 + 2*512*512) = 4,718,592
    # fewer weights (Table 2: 134M against 138M).
    'vgg16_1x1': (1000, 138_357_544 - 4_718_592, 'vgg16 minus 4,718,592 (1x1 convs), Table 2: 134M'),
    'vgg16_1x1_bn': (1000, 138_365_992 - 4_718_592, 'vgg16_bn minus 4,718,592'),
    # torchvision.models.inception_v3 (aux_logits=True) publishes 27,161,264. Without its auxiliary
    # head: minus conv0 768*128+2*128, conv1 5*5*128*768+2*768, fc 768*1000+1000 = 23,834,568.
    'inception_v3': (1000, 27_161_264, f'{_TV}.inception_v3, with the auxiliary head'),
    'alexnet': (1000, 61_100_840, f'{_TV}.alexnet'),
    # Krizhevsky et al. 2012's layout with the two-GPU grouping (conv2, conv4, conv5 see half the maps):
    # conv1 11*11*3*96+96 = 34,944; conv2 5*5*48*256+256 = 307,456; conv3 3*3*256*384+384 = 885,120;
    # conv4 3*3*192*384+384 = 663,936; conv5 3*3*192*256+256 = 442,624; fc1 6*6*256*4096+4096 =
    # 37,752,832; fc2 4096*4096+4096 = 16,781,312; head 4096*1000+1000 = 4,097,000. The paper's
    # abstract: "60 million parameters".
    'alexnet_2012': (1000, 60_965_224, 'by hand (above); Krizhevsky et al. 2012 say 60 million'),
    # torchvision.models.googlenet publishes 6,624,904 (its weights, aux heads dropped); the registered
    # default keeps the two aux heads, which add 3,188,968 (aux1 on 512 maps) + 3,191,016 (aux2 on 528):
    # conv 512*128 (528*128) + BN 2*128, fc1 2048*1024+1024, fc2 1024*1000+1000. Derived from
    # Table 1 in test_models_googlenet.py.
    'googlenet': (1000, 6_624_904 + 3_188_968 + 3_191_016, f'{_TV}.googlenet plus its two aux heads'),
}


def abstract_variables(model, size=32):
    """Variable shapes from ``model.init`` without running or compiling anything."""
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)


def shapes(tree):
    return jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), tree)


def init(model, batch=2, size=32, seed=0):
    x = jax.random.normal(jax.random.key(seed + 1), (batch, size, size, 3))
    return x, model.init(jax.random.key(seed), x, train=False)


def tiny_resnet(**fields):
    """A one-block-per-stage CIFAR ResNet, for ablations that only need the network to run."""
    return create_model('resnet20', num_classes=10, stage_sizes=(1, 1, 1), **fields)


# --- every registered model -------------------------------------------------------------------

def test_every_model_has_a_pinned_parameter_count():
    assert sorted(PINNED_PARAMS) == sorted(list_models())


@pytest.mark.parametrize('name', [pytest.param(name, marks=EXHAUSTIVE) if name == 'resnet1202' else name
                                  for name in list_models()])  # tracing 1202 layers takes 5 s: slow lane
def test_parameter_count_is_pinned(name):
    num_classes, expected, source = PINNED_PARAMS[name]
    variables = abstract_variables(create_model(name, num_classes=num_classes), min_input_size(name))
    assert count_params(variables['params']) == expected, source


def gradient_network(name: str):
    """The network the gradient test runs for ``name``: the Inception networks with one module of
    each kind, the ResNets with at most two blocks a stage, the VGGs with at most two convolutions a
    stage (conftest.shortened; every layer kind kept), and the hidden layers of VGG's and AlexNet's
    ImageNet heads 64 wide instead of 4096. Full depth and width cost minutes here (resnet1202 took
    87 s, VGG-13's 25088x4096 layer alone 8 s of a 10 s step); the full networks' parameter counts
    are pinned above and their CIFAR forms run in test_cifar_adaptation_runs_at_32_pixels."""
    model = shortened(create_model(name, num_classes=7), blocks=2)
    return model.clone(hidden=64) if hasattr(model, 'hidden') else model


@pytest.mark.parametrize('name', registry_params(distinct_networks(list_models(), gradient_network)))
def test_model_runs_and_every_parameter_gets_a_gradient(name):
    model = gradient_network(name)
    size = min_input_size(name)
    x = jax.random.normal(jax.random.key(1), (2, size, size, 3))
    logits, variables = jax.jit(lambda x: model.init_with_output(jax.random.key(0), x, train=False))(x)
    assert logits.shape == (2, 7) and logits.dtype == jnp.float32

    # Finiteness is checked in train mode: with the initial running statistics (mean 0, var 1)
    # eval-mode BN normalises nothing, and the variance then doubles with every residual
    # addition, which overflows float32 in resnet1202. Batch 4 because the ImageNet stem leaves
    # 1x1 maps in the last stage at 32x32, where BN over two values has epsilon-dominated gradients.
    x = jax.random.normal(jax.random.key(2), (4, size, size, 3))

    def loss(params):
        out, sown = model.apply({'params': params, 'batch_stats': variables.get('batch_stats', {})}, x,
                                train=True, mutable=['batch_stats', AUX_COLLECTION],
                                rngs={'dropout': jax.random.key(3)})
        # auxiliary heads (sown in train mode, see cnnzoo.training.steps) must get gradients too
        aux = sum(jnp.mean(e['logits'] ** 2) for e in jax.tree_util.tree_leaves(
            sown.get(AUX_COLLECTION, {}), is_leaf=lambda e: isinstance(e, dict) and 'logits' in e))
        return jnp.mean(out ** 2) + aux, out

    grads, logits = jax.jit(jax.grad(loss, has_aux=True))(variables['params'])
    assert logits.shape == (4, 7) and np.isfinite(logits).all()
    no_gradient = [jax.tree_util.keystr(path) for path, g in jax.tree_util.tree_leaves_with_path(grads)
                   if not (np.isfinite(g).all() and np.any(g != 0))]
    assert not no_gradient


def test_cifar_resnet18_count():
    model = create_model('resnet18', num_classes=10, stem='cifar')
    assert count_params(abstract_variables(model)['params']) == 11_173_962


def test_resnet20_count_by_hand():
    stem = 3 * 3 * 3 * 16 + 2 * 16
    stage1 = 3 * (2 * 9 * 16 * 16 + 4 * 16)
    stage2 = (9 * 16 * 32 + 9 * 32 * 32 + 4 * 32) + 2 * (2 * 9 * 32 * 32 + 4 * 32)
    stage3 = (9 * 32 * 64 + 9 * 64 * 64 + 4 * 64) + 2 * (2 * 9 * 64 * 64 + 4 * 64)
    head = 64 * 10 + 10
    assert stem + stage1 + stage2 + stage3 + head == PINNED_PARAMS['resnet20'][1]


def test_resnet20_inverted_bottleneck_count_by_hand():
    # A block from c to o channels with t = 6 has hidden width h = 6c; its parameters are
    # expand 1x1 c*h + BN 2h, depthwise 3x3 9h + BN 2h, project 1x1 h*o + BN 2o; option A adds none.
    #   stem 3*3*3*16 + 2*16                                               =     464
    #   stage 1, 3 x (16 -> 16, h 96):  3 * (1,728 + 1,056 + 1,568)        =  13,056
    #   stage 2, 16 -> 32, h 96:        1,728 + 1,056 + 3,136              =   5,920
    #            2 x (32 -> 32, h 192): 2 * (6,528 + 2,112 + 6,208)        =  29,696
    #   stage 3, 32 -> 64, h 192:       6,528 + 2,112 + 12,416             =  21,056
    #            2 x (64 -> 64, h 384): 2 * (25,344 + 4,224 + 24,704)      = 108,544
    #   head 64*10 + 10                                                    =     650
    #   total                                                                179,386
    def block(c, o, t=6):
        h = t * c
        return (c * h + 2 * h) + (9 * h + 2 * h) + (h * o + 2 * o)

    stem = 3 * 3 * 3 * 16 + 2 * 16
    stages = (3 * block(16, 16) + block(16, 32) + 2 * block(32, 32) + block(32, 64) + 2 * block(64, 64))
    head = 64 * 10 + 10
    assert stem + stages + head == 179_386
    model = create_model('resnet20', num_classes=10, residual='inverted_bottleneck')
    assert count_params(abstract_variables(model)['params']) == 179_386


# --- registry ---------------------------------------------------------------------------------

def test_list_models_is_sorted_and_globs():
    assert list_models() == sorted(list_models(), key=natural_key)
    assert list_models('resnet1*')[:2] == ['resnet18', 'resnet101']  # numbers sort as numbers
    assert list_models('plain*') == ['plain18', 'plain20', 'plain32', 'plain34', 'plain44', 'plain56',
                                     'plain110']
    assert list_models('resnet1??') == ['resnet101', 'resnet110', 'resnet152']
    assert list_models('vgg16*') == ['vgg16', 'vgg16_1x1', 'vgg16_1x1_bn', 'vgg16_bn']
    assert list_models('no_such_model*') == []


def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError) as error:
        create_model('resnet21', num_classes=10)
    message = str(error.value)
    assert "unknown model 'resnet21'" in message and '\n' not in message
    assert all(name in message for name in list_models())


def test_unknown_field_is_one_line_naming_valid_fields():
    with pytest.raises(ValueError) as error:
        create_model('resnet20', num_classes=10, stage_width=(8, 16, 32))
    message = str(error.value)
    assert "'stage_width'" in message and '\n' not in message
    assert 'stage_widths' in message and 'zero_init_last_bn' in message


def test_field_overrides_apply():
    model = create_model('resnet56', num_classes=100, activation='tanh', stage_widths=(8, 16, 32))
    assert (model.num_classes, model.activation, model.stage_widths) == (100, 'tanh', (8, 16, 32))
    assert model.stage_sizes == (9, 9, 9)


def test_duplicate_registration_fails(monkeypatch):
    monkeypatch.setattr(registry, '_REGISTRY', dict(registry._REGISTRY))
    with pytest.raises(ValueError, match="'resnet20' is already registered"):
        register_model('resnet20', BasicBlock)

    @register_model('tiny_test_net')
    def tiny(num_classes):
        return create_model('resnet20', num_classes=num_classes, stage_sizes=(1, 1, 1))

    assert 'tiny_test_net' in list_models()
    assert create_model('tiny_test_net', num_classes=3, activation='elu').activation == 'elu'
    with pytest.raises(ValueError, match='already registered'):
        register_model('tiny_test_net', tiny)


def test_unknown_activation_is_one_line_listing_names():
    with pytest.raises(ValueError) as error:
        get_activation('swish')
    assert '\n' not in str(error.value) and all(name in str(error.value) for name in ACTIVATIONS)


def test_bad_field_value_is_rejected():
    with pytest.raises(ValueError, match='shortcut'):
        abstract_variables(tiny_resnet(shortcut='C'))


def test_activation_table_matches_torch_conventions():
    x = jnp.array([-2.0, -0.5, 0.0, 1.5])
    np.testing.assert_allclose(get_activation('leaky_relu')(x), [-0.02, -0.005, 0.0, 1.5], rtol=1e-6)
    erf_gelu = 0.5 * x * (1 + jax.scipy.special.erf(x / np.sqrt(2)))
    np.testing.assert_allclose(get_activation('gelu')(x), erf_gelu, rtol=1e-6)


# --- ablation structure -----------------------------------------------------------------------

def has_projection(tree):
    return any('proj_' in jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(tree))


@pytest.mark.parametrize('name', list_models('plain*'))
def test_plain_nets_have_no_projections(name):
    assert not has_projection(abstract_variables(create_model(name, num_classes=10)))


@pytest.mark.parametrize('depth', [20, 32, 44, 56, 110])
def test_plain_cifar_net_has_the_option_a_param_tree(depth):
    plain = abstract_variables(create_model(f'plain{depth}', num_classes=10))
    resnet = abstract_variables(create_model(f'resnet{depth}', num_classes=10))
    assert shapes(plain) == shapes(resnet)


def test_option_b_adds_exactly_the_projections():
    a = abstract_variables(create_model('resnet20', num_classes=10))['params']
    b = abstract_variables(create_model('resnet20', num_classes=10, shortcut='B'))['params']
    projections = {k: {n: v for n, v in block.items() if n.startswith('proj_')}
                   for k, block in b.items() if isinstance(block, dict) and 'proj_conv' in block}
    # One projection where each of stages 2 and 3 starts: 1x1 conv + BN scale and bias.
    assert set(projections) == {'stage2_block1', 'stage3_block1'}
    assert count_params(b) - count_params(a) == count_params(projections) == (16 * 32 + 64) + (32 * 64 + 128)
    without = {k: {n: v for n, v in block.items() if not n.startswith('proj_')} for k, block in b.items()}
    assert shapes(without) == shapes(a)


@pytest.mark.parametrize('residual', ['relu_before_add', 'square'])
def test_residual_forms_share_the_standard_param_tree(residual):
    standard = abstract_variables(create_model('resnet20', num_classes=10))
    assert shapes(abstract_variables(create_model('resnet20', num_classes=10, residual=residual))) == shapes(standard)


def block_output(residual, x, seed=0, **fields):
    block = BasicBlock(features=x.shape[-1], residual=residual, **fields)
    variables = block.init(jax.random.key(seed), x, train=False)
    out, _ = block.apply(variables, x, train=True, mutable=['batch_stats'])
    return out


def test_relu_before_add_can_go_negative_where_standard_cannot():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 16))
    for seed in range(3):
        assert float(jnp.min(block_output('standard', x, seed))) >= 0.0
        assert float(jnp.min(block_output('relu_before_add', x, seed))) < 0.0


def test_inverted_bottleneck_block_has_the_mobilenet_v2_layers():
    """Expansion 1x1 from the block's input width c to t*c, depthwise 3x3 (one input channel per
    group) carrying the stride, 1x1 projection to the output width; here option B projects s(x)."""
    x = jnp.ones((2, 8, 8, 16))
    block = BasicBlock(features=32, stride=2, shortcut='B', residual='inverted_bottleneck', expansion_factor=4)
    out, variables = jax.eval_shape(lambda x: block.init_with_output(jax.random.key(0), x, train=False), x)
    assert out.shape == (2, 4, 4, 32)
    bn = lambda n: {'scale': ((n,), jnp.float32), 'bias': ((n,), jnp.float32)}  # noqa: E731
    assert shapes(variables['params']) == {
        'expand_conv': {'kernel': ((1, 1, 16, 64), jnp.float32)}, 'expand_bn': bn(64),
        'depthwise_conv': {'kernel': ((3, 3, 1, 64), jnp.float32)}, 'depthwise_bn': bn(64),
        'project_conv': {'kernel': ((1, 1, 64, 32), jnp.float32)}, 'project_bn': bn(32),
        'proj_conv': {'kernel': ((1, 1, 16, 32), jnp.float32)}, 'proj_bn': bn(32),
    }
    # Where the shape is kept the shortcut is the identity, whatever the shortcut field says.
    same = BasicBlock(features=16, shortcut='B', residual='inverted_bottleneck')
    params = jax.eval_shape(lambda x: same.init(jax.random.key(0), x, train=False), x)['params']
    assert sorted(params) == ['depthwise_bn', 'depthwise_conv', 'expand_bn', 'expand_conv', 'project_bn',
                              'project_conv']
    assert params['expand_conv']['kernel'].shape == (1, 1, 16, 96)  # t = 6 by default


def test_inverted_bottleneck_is_linear_at_its_end():
    """With ReLU, non-negative inputs and no shortcut, a standard block outputs act(F(x)) >= 0;
    the inverted bottleneck's projection has no activation after it, so its output goes negative."""
    x = jnp.abs(jax.random.normal(jax.random.key(0), (4, 8, 8, 16)))
    for seed in range(3):
        assert float(jnp.min(block_output('standard', x, seed, shortcut='none'))) >= 0.0
        assert float(jnp.min(block_output('inverted_bottleneck', x, seed, shortcut='none'))) < 0.0


def test_inverted_bottleneck_fields_are_checked_and_reach_every_block():
    model = create_model('resnet18', num_classes=10, stem='cifar', residual='inverted_bottleneck',
                         expansion_factor=4)
    params = abstract_variables(model)['params']
    for k, (c, o) in {'stage1_block1': (64, 64), 'stage2_block1': (64, 128), 'stage4_block2': (512, 512)}.items():
        assert params[k]['expand_conv']['kernel'].shape == (1, 1, c, 4 * c), k
        assert params[k]['project_conv']['kernel'].shape == (1, 1, 4 * c, o), k
    assert 'proj_conv' in params['stage2_block1'] and 'proj_conv' not in params['stage2_block2']
    with pytest.raises(ValueError, match='expansion_factor=0'):
        create_model('resnet20', num_classes=10, residual='inverted_bottleneck', expansion_factor=0)
    with pytest.raises(ValueError, match='inverted_bottleneck'):  # the Literal's values are listed
        create_model('resnet20', num_classes=10, residual='inverted')


def test_square_residual_differs_from_standard():
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 16))
    assert not np.allclose(block_output('square', x), block_output('standard', x))


def test_preact_runs_and_differs():
    x, standard_vars = init(tiny_resnet())
    preact = tiny_resnet(residual='preact')
    preact_vars = preact.init(jax.random.key(0), x, train=False)
    params = preact_vars['params']
    assert 'final_bn' in params and 'stem_bn' not in params and 'final_bn' not in standard_vars['params']
    logits, _ = preact.apply(preact_vars, x, train=True, mutable=['batch_stats'])
    assert np.isfinite(logits).all()
    assert not np.allclose(logits, tiny_resnet().apply(standard_vars, x, train=True,
                                                       mutable=['batch_stats'])[0])
    # A preact projection reads the pre-activated input and has no BN of its own.
    b = abstract_variables(create_model('resnet18', num_classes=10, residual='preact'))['params']
    assert 'proj_conv' in b['stage2_block1'] and 'proj_bn' not in b['stage2_block1']


@pytest.mark.parametrize('activation', sorted(ACTIVATIONS))
def test_every_activation_runs(activation):
    x, variables = init(tiny_resnet(activation=activation))
    logits = tiny_resnet(activation=activation).apply(variables, x, train=False)
    assert logits.shape == (2, 10) and np.isfinite(logits).all()


@pytest.mark.parametrize('name', ['resnet20', pytest.param('resnet50', marks=pytest.mark.slow)])  # bottleneck: slow lane
def test_zero_init_last_bn_zeros_each_branchs_last_scale(name):
    model = create_model(name, num_classes=10, zero_init_last_bn=True)
    params = init(model)[1]['params']
    last = 'bn3' if model.block is Bottleneck else 'bn2'
    blocks = [k for k in params if k.startswith('stage')]
    assert len(blocks) == sum(model.stage_sizes)
    for k in blocks:
        assert not np.any(params[k][last]['scale']), k
        others = [n for n in params[k] if n.startswith('bn') and n != last]
        assert all(np.all(params[k][n]['scale'] == 1) for n in others)


@pytest.mark.parametrize('residual', ['standard', 'inverted_bottleneck'])
@pytest.mark.parametrize('stride', [1, 2])
def test_zero_init_block_starts_as_its_shortcut(stride, residual):
    x = jnp.abs(jax.random.normal(jax.random.key(0), (2, 8, 8, 16)))  # a ReLU's output
    features = 16 * stride
    block = BasicBlock(features=features, stride=stride, residual=residual, zero_init_last_bn=True)
    out, _ = block.apply(block.init(jax.random.key(1), x, train=False), x, train=True,
                         mutable=['batch_stats'])
    pad = (features - 16) // 2
    shortcut = jnp.pad(x[:, ::stride, ::stride], ((0, 0), (0, 0), (0, 0), (pad, pad)))
    np.testing.assert_allclose(out, shortcut)


def test_bfloat16_compute_keeps_float32_params_and_logits():
    model = tiny_resnet(dtype=jnp.bfloat16)
    x, variables = init(model)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(variables)} == {jnp.dtype(jnp.float32)}
    logits, _ = model.apply(variables, x, train=True, mutable=['batch_stats'])
    assert logits.dtype == jnp.float32 and np.isfinite(logits).all()
    reference = tiny_resnet().apply(variables, x, train=False)
    np.testing.assert_allclose(model.apply(variables, x, train=False), reference, rtol=0.1, atol=0.1)


def test_train_mode_updates_batch_stats_and_eval_mode_does_not():
    model = tiny_resnet()
    x, variables = init(model)
    _, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
    before, after = variables['batch_stats'], updates['batch_stats']
    assert jax.tree_util.tree_structure(before) == jax.tree_util.tree_structure(after)
    changed = jax.tree_util.tree_map(lambda a, b: bool(np.any(a != b)), before, after)
    assert all(jax.tree_util.tree_leaves(changed))
    # momentum 0.9: running mean = 0.9 * 0 + 0.1 * batch mean.
    conv_out = jax.lax.conv_general_dilated(
        x, variables['params']['stem_conv']['kernel'], (1, 1), ((1, 1), (1, 1)),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    np.testing.assert_allclose(after['stem_bn']['mean'], 0.1 * conv_out.mean(axis=(0, 1, 2)),
                               rtol=1e-4, atol=1e-6)
    _, unchanged = model.apply(variables, x, train=False, mutable=['batch_stats'])
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, unchanged['batch_stats'], before))


def test_imagenet_stem_downsamples_four_times_and_cifar_stem_keeps_size():
    def first_block_output(name, **fields):
        model = create_model(name, num_classes=10, **fields)
        capture = lambda module, method: module.name == 'stage1_block1' and method == '__call__'  # noqa: E731
        _, state = jax.eval_shape(
            lambda v, x: model.apply(v, x, train=False, mutable=['intermediates'],
                                     capture_intermediates=capture),
            abstract_variables(model), jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
        return state['intermediates']['stage1_block1']['__call__'][0].shape

    assert first_block_output('resnet18') == (1, 16, 16, 64)
    assert first_block_output('resnet18', stem='cifar') == (1, 64, 64, 64)
    assert first_block_output('resnet50') == (1, 16, 16, 256)


@pytest.mark.parametrize('name', registry_params(list_models()))
def test_cifar_adaptation_runs_at_32_pixels(name):
    """``cifar_fields(name)`` gives a model that maps 32x32 images to logits."""
    model = create_model(name, num_classes=10, **cifar_fields(name))
    out = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), jnp.zeros((2, 32, 32, 3)),
                                                        train=False)[0])
    assert out.shape == (2, 10)
