"""The PyTorch twins compute what the cnnzoo models compute, and weights convert losslessly.

For every case in ``CASES`` (a model name, fields, an input size; a new family is one line there)
with random weights and inputs: eval-mode logits, train-mode outputs (auxiliary heads' logits
included) and BatchNorm running statistics agree with the twin's, and torch -> cnnzoo -> torch and
cnnzoo -> torch -> cnnzoo conversions are bitwise identities. Optimizer steps agree for every
optimizer ``make_optimizer`` offers that ``torch.optim`` has; every criterion's loss and gradient
agree with its twin's, and a model with auxiliary heads gets the same loss from a non-default
criterion in both. To keep XLA compilation from dominating the run time,
variables are drawn at random on the shapes from ``eval_shape`` (no ``init``), each model's eval
and train ``apply`` is compiled once (one jit each: for the whole file, cheaper than running flax
op by op, which compiles every distinct operation separately), and the optimizer comparisons
share one jitted gradient.
"""

import os
import re
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from conftest import EXHAUSTIVE

from cnnzoo.config import default_config, load_config_file
from cnnzoo.errors import ConfigError
from cnnzoo.models import ACTIVATIONS, create_model
from cnnzoo.models.googlenet import TABLE1
from cnnzoo.models.inception import MIXED
from cnnzoo.models.normalization import LocalResponseNorm
from cnnzoo.run.setup import build
from cnnzoo.torch import (
    ConversionError,
    create_torch_model,
    flax_to_torch,
    init_from_state_dict,
    key_map,
    load_variables,
    make_torch_loss,
    make_torch_optimizer,
    split_outputs,
    torch_to_flax,
    torch_twin,
    twin_loss,
    twin_variables,
)
from cnnzoo.torch import layers as torch_layers
from cnnzoo.torch.vgg import torch_lrn
from cnnzoo.training import (
    LOSSES,
    OPTIMIZERS,
    TrainState,
    cross_entropy,
    make_loss,
    make_optimizer,
    make_train_step,
)
from cnnzoo.training.losses import loss_params
from cnnzoo.training.steps import AUX_COLLECTION

pytestmark = pytest.mark.usefixtures('one_torch_thread')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-4  # max |a - b| / max |b|, float32

# Shallower GoogLeNet and Inception v3 for some cases, to keep compilation short: every kind of
# layer stays (the modules of a kind differ only in widths). The full GoogLeNet runs in the CIFAR
# case, the full Inception v3 in test_inception_v3_imagenet_layout_at_its_smallest_input, and
# test_torchvision_state_dict_loads_strict checks every name and shape of both.
GOOGLENET_SHORT = {'layout': tuple(TABLE1[i] for i in (0, 2, 3, 8, 9)),  # 3a, maxpool3, 4a, maxpool4, 5a
                   'aux_after': ('inception4a',), 'dropout': 0.0, 'aux_dropout': 0.0}
INCEPTION_V3_SHORT = {'mixed': tuple(MIXED[i] for i in (0, 3, 4, 8, 9)),  # InceptionA, B, C, D, E
                      'aux_after': 'Mixed_6b', 'dropout': 0.0}

# (model name, fields, input size). ImageNet-head VGGs and AlexNets get narrow hidden layers (the
# flattened map -> hidden layer is what the converter permutes; its width does not matter); every
# dropout is off, so train-mode outputs are deterministic. AlexNet at 95 pixels reaches its
# adaptive pool with a 2x2 map (63 pixels: 1x1), so fc1's spatial order matters.
CASES = [
    ('resnet20', {}, 32),
    ('resnet20', {'shortcut': 'B', 'activation': 'leaky_relu'}, 32),
    ('plain20', {}, 32),
    ('resnet20', {'residual': 'preact'}, 32),
    ('resnet20', {'residual': 'preact', 'shortcut': 'B'}, 32),
    ('resnet20', {'residual': 'relu_before_add', 'activation': 'tanh'}, 32),
    ('resnet20', {'residual': 'square', 'activation': 'gelu', 'stage_sizes': (1, 1, 1)}, 32),
    # inverted bottlenecks: depthwise (groups = channels) convolutions; identity, option-A, option-B
    # and no shortcuts; t = 6 (default) and t = 4
    ('resnet20', {'residual': 'inverted_bottleneck'}, 32),
    ('resnet20', {'residual': 'inverted_bottleneck', 'shortcut': 'none', 'activation': 'silu',
                  'stage_sizes': (1, 1, 1)}, 32),
    ('resnet18', {'stem': 'cifar', 'residual': 'inverted_bottleneck', 'expansion_factor': 4,
                  'stage_sizes': (1, 1, 1, 1)}, 32),
    ('resnet18', {}, 32),
    ('resnet18', {'stem': 'cifar'}, 32),
    ('resnet18', {'residual': 'preact', 'stage_sizes': (1, 1, 1, 1)}, 32),
    ('resnet50', {'stage_sizes': (2, 1, 1, 1)}, 32),  # every bottleneck kind; full depth: test_full_depth_*
    ('vgg11_bn', {'head': 'cifar'}, 32),
    ('vgg11_bn', {'hidden': 64, 'dropout': 0.0}, 32),
    ('vgg11_lrn', {'head': 'cifar'}, 32),
    ('vgg11_lrn', {'hidden': 64, 'dropout': 0.0}, 32),
    ('vgg16_1x1_bn', {'head': 'cifar', 'activation': 'silu'}, 32),
    ('alexnet', {'hidden': 64, 'dropout': 0.0}, 95),
    ('alexnet_2012', {'hidden': 64, 'dropout': 0.0}, 63),  # LRN, groups=2, dropout after the hidden layers
    ('alexnet', {'stem': 'cifar', 'head': 'cifar', 'hidden': 64, 'dropout': 0.0}, 32),
    ('googlenet', {'stem': 'cifar', 'dropout': 0.0, 'aux_dropout': 0.0}, 32),  # aux heads on 16x16 maps
    ('googlenet', GOOGLENET_SHORT, 32),  # ImageNet stem: its ceil-mode pools take 16 pixels to 8, 4, 2 and 1
    ('googlenet', {**GOOGLENET_SHORT, 'stem': 'cifar', 'branch3': '5x5'}, 32),
    ('googlenet', {**GOOGLENET_SHORT, 'stem': 'cifar', 'branch3': 'double_3x3', 'aux_logits': False}, 32),
    ('inception_v3', {**INCEPTION_V3_SHORT, 'stem': 'cifar', 'aux_pool': (3, 3)}, 32),  # aux head on 15x15 maps
    # PyTorch's running-variance convention, for ported recipes: running statistics then match exactly
    ('resnet20', {'bn_running_var': 'unbiased'}, 32),
    ('vgg11_bn', {'head': 'cifar', 'bn_running_var': 'unbiased'}, 32),
    ('googlenet', {**GOOGLENET_SHORT, 'stem': 'cifar', 'bn_running_var': 'unbiased'}, 32),
    ('inception_v3', {**INCEPTION_V3_SHORT, 'stem': 'cifar', 'aux_pool': (3, 3), 'bn_running_var': 'unbiased'}, 32),
]
BATCH = 4


def case_id(case):
    name, fields, size = case
    short = {k: v if len(str(v)) <= 40 else f'<{len(v)}>' for k, v in fields.items()}  # layouts
    return '-'.join([name, *(f'{k}={v}' for k, v in short.items()), str(size)]).replace(' ', '')


def relative_error(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def flat(variables) -> dict:
    return {jax.tree_util.keystr(path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_leaves_with_path(variables)}


def shapes_of(model, size):
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), x)


def random_variables(shapes, seed=0) -> dict:
    """Random weights of the right scale, and BN scales/offsets/statistics far from their init."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = path[-1].key
        if name == 'kernel':
            fan_in = int(np.prod(leaf.shape[:-1]))
            value = rng.normal(0, np.sqrt(2.0 / fan_in), leaf.shape)
        elif name in ('scale', 'var'):
            value = rng.uniform(0.5, 1.5, leaf.shape)
        else:  # bias, mean
            value = rng.normal(0, 0.1, leaf.shape)
        return value.astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


# The fast lane's cases (`-m "not slow"`): one of each family and of each layer kind.
FAST_LANE_CASES = (
    ('resnet20', {'residual': 'preact', 'shortcut': 'B'}, 32),
    ('resnet20', {'residual': 'inverted_bottleneck'}, 32),
    ('resnet50', {'stage_sizes': (2, 1, 1, 1)}, 32),
    ('vgg11_lrn', {'hidden': 64, 'dropout': 0.0}, 32),
    ('alexnet_2012', {'hidden': 64, 'dropout': 0.0}, 63),
    ('googlenet', {**GOOGLENET_SHORT, 'stem': 'cifar', 'bn_running_var': 'unbiased'}, 32),
)


@pytest.fixture(scope='module', params=[pytest.param(c, marks=() if c in FAST_LANE_CASES else EXHAUSTIVE)
                                        for c in CASES], ids=case_id)
def pair(request):
    return make_pair(*request.param)


def make_pair(name, fields, size, variables_size=None):
    """The flax model, its variable shapes and random variables (built at ``variables_size``,
    by default ``size``), its twin holding them, and a batch of ``size`` x ``size`` inputs."""
    model = create_model(name, num_classes=10, **fields)
    shapes = shapes_of(model, variables_size or size)
    variables = random_variables(shapes)
    twin = create_torch_model(name, num_classes=10, **fields)
    load_variables(twin, variables, model)
    x = np.random.default_rng(1).normal(size=(BATCH, size, size, 3)).astype(np.float32)
    return model, shapes, variables, twin, x


def flax_eval(model, variables, x):
    return jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)


def flax_train(model, variables, x):
    """Train-mode logits and the updated collections: ``batch_stats`` and the sown auxiliary logits."""
    return jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats', AUX_COLLECTION]))(variables, x)


def sown_aux_outputs(tree, path=()) -> dict:
    """``{'aux1/output': {'logits': ..., 'weight': ...}}`` from the ``'aux_outputs'`` collection
    (``sow`` keeps each value in a tuple)."""
    if isinstance(tree, dict) and 'logits' in tree:
        return {'/'.join(path): tree}
    if isinstance(tree, (tuple, list)):
        return {k: v for item in tree for k, v in sown_aux_outputs(item, path).items()}
    return {k: v for name, sub in tree.items() for k, v in sown_aux_outputs(sub, (*path, name)).items()}


def test_eval_logits_match(pair):
    model, _, variables, twin, x = pair
    logits = flax_eval(model, variables, x)
    with torch.no_grad():
        twin_logits = twin.eval()(nchw(x)).numpy()
    assert logits.shape == twin_logits.shape == (BATCH, 10)
    assert relative_error(twin_logits, logits) < TOLERANCE


def test_inception_v3_imagenet_layout_at_its_smallest_input():
    """Inception v3's ImageNet stem (unpadded convolutions and max-pools) at 75 pixels, where Mixed_7
    sees 1x1 maps, in eval mode with the variables of the full model (auxiliary head included, built
    at 299), as with torchvision's weights. Only eval: in training a BN there normalises 4 values per
    channel, where float32 agreement means little; the CIFAR case has the same modules and shapes."""
    test_eval_logits_match(make_pair('inception_v3', {'dropout': 0.0}, 75, variables_size=299))


def test_train_outputs_and_running_statistics_match(pair):
    """One train-mode forward: equal outputs (the auxiliary heads' too, with their loss weights);
    equal running means; running variances differ by exactly torch's unbiasing factor n / (n - 1),
    n = batch x height x width at each BN, or are equal where the model takes PyTorch's convention
    (``bn_running_var='unbiased'``).

    A BN over a handful of values per channel (resnet50's last stage at 32x32 pixels sees 4) is
    ill-conditioned: float32 roundoff grows through it on either side alike. So each quantity is
    compared within ``TOLERANCE`` or, if larger, 3x the float32 twin's own error against the same
    twin in float64.
    """
    model, _, variables, _, x = pair
    logits, updates = flax_train(model, variables, x)
    flax_aux = sown_aux_outputs(updates.get(AUX_COLLECTION, {}))

    runs = {}
    for dtype in (torch.float32, torch.float64):
        twin = torch_twin(model).to(dtype)
        load_variables(twin, variables, model)
        counts = {}  # BN module name -> values per channel in its input

        def count(name, counts=counts):  # this twin's counts, bound now
            return lambda module, args: counts.__setitem__(name, args[0].numel() // args[0].shape[1])

        for name, m in twin.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.register_forward_pre_hook(count(name))
        with torch.no_grad():
            out, aux = split_outputs(twin, twin.train()(nchw(x).to(dtype)))
        out = {'logits': (out.numpy(), None), **{k: (v.numpy(), w) for k, (v, w) in aux.items()}}
        runs[dtype] = out, twin_variables(twin, model, template=variables)['batch_stats'], counts
    (twin_out, after, counts), (exact_out, exact_after, _) = runs[torch.float32], runs[torch.float64]

    def tolerance(ours, exact):
        return max(TOLERANCE, 3 * relative_error(ours, exact))

    # Every classifier but the main one is an auxiliary head, and each is compared.
    assert len(flax_aux) == len([layer for layer in key_map(model) if layer.head]) - 1
    assert twin_out.keys() == {'logits', *flax_aux}
    for name, (ours, weight) in twin_out.items():
        theirs = logits if name == 'logits' else flax_aux[name]['logits']
        assert relative_error(ours, theirs) < tolerance(ours, exact_out[name][0]), name
        assert name == 'logits' or weight == flax_aux[name]['weight'], name
    bn_layers = [layer for layer in key_map(model) if layer.kind == 'bn']
    assert len(bn_layers) == len(counts) == len(jax.tree_util.tree_leaves(variables.get('batch_stats', {}))) // 2
    for layer in bn_layers:
        momentum = model.bn_momentum
        old, flax_new, torch_new, exact = (_at(tree, layer.flax) for tree in (
            variables['batch_stats'], updates['batch_stats'], after, exact_after))
        assert relative_error(torch_new['mean'], flax_new['mean']) < tolerance(torch_new['mean'], exact['mean']), \
            layer.torch
        n = counts[layer.torch]
        factor = 1.0 if getattr(model, 'bn_running_var', 'biased') == 'unbiased' else n / (n - 1)
        flax_batch_var = np.asarray(flax_new['var']) - momentum * old['var']
        torch_batch_var = torch_new['var'] - momentum * old['var']
        exact_batch_var = exact['var'] - momentum * old['var']
        assert (relative_error(torch_batch_var, flax_batch_var * factor)
                < tolerance(torch_batch_var, exact_batch_var)), layer.torch
        if n < 100 and factor != 1.0:  # where the factor is visible above float32 noise, it is really there
            assert relative_error(torch_batch_var, flax_batch_var) > 10 * TOLERANCE, layer.torch


def _at(tree, path):
    for part in path:
        tree = tree[part]
    return tree


def test_round_trips_are_lossless(pair):
    model, shapes, variables, _, _ = pair
    # cnnzoo -> torch (through the twin's load_state_dict) -> cnnzoo
    twin = torch_twin(model)
    load_variables(twin, variables, model)
    back = twin_variables(twin, model, template=shapes)
    chex.assert_trees_all_equal(flat(variables), flat(back), strict=True)  # an empty batch_stats or none

    # torch (the twin's own initialisation, with BN statistics moved off 0/1) -> cnnzoo -> torch
    fresh = torch_twin(model)
    with torch.no_grad():
        for m in fresh.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(7)
    state_dict = fresh.state_dict()
    again = flax_to_torch(torch_to_flax(state_dict, model, template=shapes), model)
    assert list(again) == list(state_dict)
    for k, v in state_dict.items():
        if k.endswith('num_batches_tracked'):  # flax keeps no counter: written as 0
            assert again[k].dtype == np.int64 and again[k] == 0
        else:
            assert np.array_equal(v.numpy(), again[k]), k


# --- optimizers -------------------------------------------------------------------------------

# (id, config.optimizer overrides, learning rate, tolerance on the parameters' change).
# Adam and RMSprop divide by sqrt(v) + eps: where a gradient is near 0, float32 roundoff in the
# gradient moves the step by up to ~1e-3 of its size, on either framework alike; SGD's steps are
# linear in it.
OPTIMIZER_CASES = [
    ('sgd_momentum_decay', {'momentum': 0.9, 'weight_decay': 5e-3}, 0.1),
    ('sgd_nesterov', {'momentum': 0.9, 'nesterov': True, 'weight_decay': 5e-3}, 0.1),
    ('sgd_no_decay_on_bn_and_bias', {'momentum': 0.9, 'weight_decay': 5e-2, 'decay_bn_and_bias': False}, 0.1),
    ('sgd_without_momentum', {'momentum': 0.0, 'weight_decay': 5e-3}, 0.1),
    ('adam_l2', {'name': 'adam', 'weight_decay': 1e-2}, 1e-3),
    ('adamw', {'name': 'adamw', 'weight_decay': 0.1}, 1e-3),
    ('adamw_no_decay_on_bn_and_bias', {'name': 'adamw', 'weight_decay': 0.1, 'decay_bn_and_bias': False}, 1e-3),
    ('rmsprop', {'name': 'rmsprop', 'momentum': 0.0, 'weight_decay': 1e-2}, 1e-3),
    ('rmsprop_momentum', {'name': 'rmsprop', 'momentum': 0.9, 'weight_decay': 1e-2}, 1e-3),
    # At alpha 0.99 the first step is 10 x the rate (the root of 1 - 0.99 divides it): the rate is
    # 10 x smaller, for steps of the others' size.
    ('rmsprop_alpha_0.99', {'name': 'rmsprop', 'momentum': 0.0, 'rms_decay': 0.99, 'eps': 1e-4,
                            'weight_decay': 0.0}, 1e-4),
    ('rmsprop_centered_no_decay_on_bn_and_bias', {'name': 'rmsprop', 'centered': True, 'momentum': 0.9, 'eps': 1e-4,
                                                  'weight_decay': 5e-2, 'decay_bn_and_bias': False}, 1e-3),
]
# The optimizers of OPTIMIZERS that torch.optim does not have, and why (make_torch_optimizer refuses
# them with this reason); every other one needs a case above.
NO_TWIN = {'lars': 'torch.optim has no LARS', 'lamb': 'torch.optim has no LAMB'}
STEPS = 3
RATE_DECAY = 0.5  # the rate halves every step: each framework must apply the step's rate where the other does
# The steps the two frameworks take from the same gradients differ by float32 rounding only: in the
# update's own arithmetic, which the adaptive optimizers amplify where a moment nearly cancels (to
# 2e-5 of the largest step of a tensor, measured: rmsprop with momentum), and, per step, in the
# addition to the weight, which each framework rounds (or fuses) in its own place: at most an ulp of
# the weight each (a step of 1e-3 on a weight near 4 is resolved to 4.8e-7 only). Every machine
# rounds these elementwise IEEE operations the same up to an FMA's contraction (an ulp). A
# convention that differs (where the rate or the decay applies, eps inside or outside the root,
# dampening) moves a step by 1e-3 to 1 of its size.
STEP_TOLERANCE = 1e-4


def step_mismatch(start, a_end, b_end, steps: int) -> tuple[float, str]:
    """The largest difference of the steps ``a_end - start`` and ``b_end - start``, over what float32
    rounding allows it (below 1 passes): STEP_TOLERANCE of the largest step, plus an ulp of the
    weight per framework and step; and the worst element, described."""
    start, a_end, b_end = (np.asarray(x, np.float32) for x in (start, a_end, b_end))
    a_step = a_end.astype(np.float64) - start
    b_step = b_end.astype(np.float64) - start
    rounding = 2 * steps * np.spacing(np.maximum(np.abs(start), np.maximum(np.abs(a_end), np.abs(b_end))))
    allowed = STEP_TOLERANCE * np.max(np.abs(b_step)) + rounding.astype(np.float64)
    ratio = np.abs(a_step - b_step) / allowed
    i = np.unravel_index(np.argmax(ratio), ratio.shape)
    return float(ratio[i]), (f'worst at {i}: weight {start[i]!r} -> {a_end[i]!r} / {b_end[i]!r}, steps '
                             f'{a_step[i]:.9g} / {b_step[i]:.9g}, allowed {allowed[i]:.3g}')


@pytest.fixture(scope='module')
def small_resnet():
    """A ResNet-8 with projections, random weights, a few batches, and its jitted loss gradient
    (compiled once for every optimizer; the optimizers are what these tests compare)."""
    model = create_model('resnet20', num_classes=10, stage_sizes=(1, 1, 1), shortcut='B')
    variables = random_variables(shapes_of(model, 16))
    rng = np.random.default_rng(2)
    batches = [(rng.normal(size=(8, 16, 16, 3)).astype(np.float32), rng.integers(0, 10, 8).astype(np.int32))
               for _ in range(STEPS)]

    def loss_fn(params, batch_stats, images, labels):
        logits, updates = model.apply({'params': params, 'batch_stats': batch_stats}, images, train=True,
                                      mutable=['batch_stats'])
        return cross_entropy(logits, labels).mean(), updates['batch_stats']

    return model, variables, batches, jax.jit(jax.value_and_grad(loss_fn, has_aux=True))


def set_torch_grads(twin, grads, model, batch_stats) -> None:
    """Give each parameter of ``twin`` the gradient ``grads`` holds for it (flax's layout carried into
    PyTorch's by the bridge, as the weights are)."""
    carrier = torch_twin(model)
    load_variables(carrier, {'params': grads, 'batch_stats': batch_stats}, model)
    for parameter, gradient in zip(twin.parameters(), carrier.parameters(), strict=True):
        parameter.grad = gradient.detach().clone()


@pytest.mark.parametrize('overrides,learning_rate', [o[1:] for o in OPTIMIZER_CASES],
                         ids=[o[0] for o in OPTIMIZER_CASES])
def test_optimizer_steps_match(small_resnet, overrides, learning_rate):
    """Three steps (momentum and moments carry over) from the same weights and the same gradients
    (JAX's, of a few batches along JAX's trajectory), at a rate that changes every step (as a
    schedule does: PyTorch's is set before each step, as cnnzoo/torch/recipe.py sets it). The same
    gradients make this a test of the optimizers alone: with each framework's own backward pass,
    adaptive optimizers turn the float32 rounding of near-zero gradient entries into whole steps
    (adam's first step is lr * sign(g)), and a tolerance would have to be tuned to the CPU at hand.
    The gradients' own parity is the model tests' (test_train_outputs_and_running_statistics_match)."""
    model, variables, batches, loss_and_grads = small_resnet
    config = default_config()
    config.optimizer.update(overrides)
    rates = [learning_rate * RATE_DECAY ** i for i in range(STEPS)]

    tx = make_optimizer(config.optimizer, lambda count: learning_rate * RATE_DECAY ** count)
    params, batch_stats = variables['params'], variables['batch_stats']
    opt_state = tx.init(params)

    @jax.jit
    def apply_gradients(grads, opt_state, params):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    gradients = []
    for images, labels in batches:
        (_, batch_stats), grads = loss_and_grads(params, batch_stats, images, labels)
        gradients.append(grads)
        params, opt_state = apply_gradients(grads, opt_state, params)

    twin = torch_twin(model)
    load_variables(twin, variables, model)
    optimizer = make_torch_optimizer(config.optimizer, twin, learning_rate)
    for rate, grads in zip(rates, gradients, strict=True):
        for group in optimizer.param_groups:
            group['lr'] = rate
        set_torch_grads(twin, grads, model, variables['batch_stats'])
        optimizer.step()

    start, flax_end, torch_end = flat(variables['params']), flat(params), flat(twin_variables(twin, model)['params'])
    for k in start:
        assert np.abs(flax_end[k] - start[k]).max() > 0, k
        mismatch, worst = step_mismatch(start[k], torch_end[k], flax_end[k], STEPS)
        assert mismatch < 1, f'{k}: {mismatch:.3g} of the rounding allowed; {worst}'
        assert relative_error(torch_end[k], flax_end[k]) < TOLERANCE, k


def test_rmsprop_momentum_is_not_optax_rmsprop_under_a_changing_rate(small_resnet):
    """Why cnnzoo composes its rmsprop: optax.rmsprop multiplies by the rate before the momentum
    buffer, PyTorch after it; with the rate changing every step they part (and the parity test above
    holds for cnnzoo's)."""
    _, variables, batches, loss_and_grads = small_resnet
    config = default_config()
    config.optimizer.update({'name': 'rmsprop', 'momentum': 0.9, 'weight_decay': 0.0})
    def schedule(count):
        return 1e-3 * RATE_DECAY ** count

    ends = []
    for tx in (make_optimizer(config.optimizer, schedule),
               optax.rmsprop(schedule, decay=0.9, eps=1e-8, eps_in_sqrt=False, momentum=0.9)):
        params, batch_stats, opt_state = variables['params'], variables['batch_stats'], tx.init(variables['params'])
        for images, labels in batches:
            (_, batch_stats), grads = loss_and_grads(params, batch_stats, images, labels)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
        ends.append(flat(params))
    start = flat(variables['params'])
    assert max(relative_error(ends[1][k] - start[k], ends[0][k] - start[k]) for k in start) > 0.1


@pytest.mark.parametrize('name', OPTIMIZERS.names())
def test_every_optimizer_has_a_twin_or_a_stated_reason(name):
    """A new optimizer fails here until it has a parity case above, or is listed in NO_TWIN with the
    reason that make_torch_optimizer gives."""
    cases = [case for case in OPTIMIZER_CASES if case[1].get('name', 'sgd') == name]
    config = default_config()
    config.optimizer.name = name
    if name not in NO_TWIN:
        assert cases, f'optimizer {name!r}: no case in OPTIMIZER_CASES and not in NO_TWIN'
        return
    assert not cases
    with pytest.raises(ConfigError) as raised:
        make_torch_optimizer(config.optimizer, torch.nn.Linear(2, 2), 0.1)
    assert str(raised.value).startswith(f"config.optimizer.name='{name}' has no PyTorch twin: {NO_TWIN[name]}")


# --- criteria ---------------------------------------------------------------------------------

# A value away from its default for every parameter a criterion reads (a new parameter needs one).
LOSS_PARAMETERS = {'training.label_smoothing': 0.1, 'training.focal_gamma': 0.5, 'training.poly1_epsilon': -0.5}
LOSS_TOLERANCE = 1e-5  # max |a - b| / max |b| of float32 losses and gradients: a few roundings apart


def criterion_logits(seed=3):
    """Logits at several scales, with an example confidently right (p_y rounds to 1 in float32) and
    one confidently wrong, and their labels."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(16, 10)) * np.linspace(0.3, 6, 16)[:, None]
    labels = rng.integers(0, 10, 16)
    logits[0, labels[0]] += 40.0
    logits[1, (labels[1] + 1) % 10] += 40.0
    return logits.astype(np.float32), labels


def twin_loss_and_grad(torch_fn, logits, labels, dtype):
    z = torch.tensor(logits, dtype=dtype, requires_grad=True)
    losses = torch_fn(z, torch.from_numpy(labels))
    losses.mean().backward()
    return losses.detach().numpy(), z.grad.numpy()


@pytest.mark.parametrize('name', LOSSES.names())
def test_criterion_loss_and_gradient_match_the_twin(name):
    """Per-example losses and the gradient of their mean with respect to the logits, at the schema's
    defaults and with every parameter the criterion reads set away from them, training and evaluation
    forms: cnnzoo's (float32) within LOSS_TOLERANCE of the twin in float64, and the twin in float32
    as close to cnnzoo's as its own rounding allows (within 3x its error against float64: torch's
    float32 log-sum-exp gradient is ~1e-5 off at logits of scale 6, cnnzoo's ~1e-6)."""
    logits, labels = criterion_logits()
    settings = [{}, {key: LOSS_PARAMETERS[key] for key in LOSSES.get(name).params}]
    for overrides in settings:
        config = default_config()
        config.training.loss = name
        for key, value in overrides.items():
            section, field = key.split('.')
            config[section][field] = value
        for evaluation in (False, True):
            jax_fn, torch_fn = make_loss(config, evaluation=evaluation), make_torch_loss(config, evaluation=evaluation)
            losses, grads = jax.value_and_grad(lambda z, fn=jax_fn: fn(z, labels).mean())(jnp.asarray(logits))
            jax_out = np.asarray(jax_fn(jnp.asarray(logits), labels)), np.asarray(grads)
            exact = twin_loss_and_grad(torch_fn, logits, labels, torch.float64)
            twin = twin_loss_and_grad(torch_fn, logits, labels, torch.float32)
            where = f'{name} {overrides} evaluation={evaluation}'
            assert twin[0].shape == jax_out[0].shape == (16,), where
            assert np.isfinite(jax_out[1]).all() and np.abs(jax_out[1]).max() > 0, where
            for ours, theirs, reference, what in zip(jax_out, twin, exact, ('loss', 'gradient')):
                assert relative_error(ours, reference) < LOSS_TOLERANCE, f'{where}: {what}'
                tolerance = max(LOSS_TOLERANCE, 3 * relative_error(theirs, reference))
                assert relative_error(theirs, ours) < tolerance, f'{where}: {what}'
            assert float(losses) == pytest.approx(float(exact[0].mean()), rel=LOSS_TOLERANCE), where
    assert loss_params(config) != loss_params(default_config()) or not LOSSES.get(name).params


@pytest.mark.slow  # the criteria's parity and the auxiliary heads' weights are in the fast lane apart
def test_an_auxiliary_head_model_trains_with_a_non_default_criterion_in_both_frameworks():
    """GoogLeNet's auxiliary heads take the run's criterion (focal here) in cnnzoo's train step and
    in the twin's loss alike: the step's loss is the twin's, and is not the cross-entropy one."""
    model, _, variables, twin, x = make_pair('googlenet', {**GOOGLENET_SHORT, 'stem': 'cifar'}, 32)
    labels = np.random.default_rng(4).integers(0, 10, BATCH).astype(np.int32)
    config = default_config()
    config.training.loss = 'focal'
    state = TrainState.create(apply_fn=model.apply, variables=variables, tx=optax.sgd(0.01))
    step = jax.jit(make_train_step(preprocess=lambda rng, images: images, learning_rate_fn=lambda s: 0.01,
                                   loss_fn=make_loss(config)))
    new, metrics = step(state, {'image': jnp.asarray(x), 'label': jnp.asarray(labels)}, jax.random.PRNGKey(0))
    output = twin.train()(nchw(x))
    assert split_outputs(twin, output)[1], 'the twin must return its auxiliary logits in train mode'
    focal_loss = twin_loss(twin, output, torch.from_numpy(labels).long(), make_torch_loss(config))[0]
    cross_entropy_loss = twin_loss(twin, output, torch.from_numpy(labels).long())[0]
    focal_loss, cross_entropy_loss = float(focal_loss.detach()), float(cross_entropy_loss.detach())
    assert float(metrics['loss']) == pytest.approx(focal_loss, rel=1e-4)
    assert abs(focal_loss - cross_entropy_loss) > 0.1 * cross_entropy_loss
    moved = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), state.params, new.params)
    assert all(jax.tree_util.tree_leaves(moved)), 'every parameter, the auxiliary heads\' too, must move'


# --- layouts, tables and errors ---------------------------------------------------------------


def torchvision_resnet_shapes(blocks, bottleneck: bool, num_classes=1000) -> dict:
    """torchvision.models.resnet*().state_dict() key names and shapes, written out independently."""
    shapes = {}

    def bn(prefix, c):
        shapes.update({f'{prefix}.weight': (c,), f'{prefix}.bias': (c,), f'{prefix}.running_mean': (c,),
                       f'{prefix}.running_var': (c,), f'{prefix}.num_batches_tracked': ()})

    shapes['conv1.weight'] = (64, 3, 7, 7)
    bn('bn1', 64)
    cin = 64
    for i, (n, planes) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        cout = planes * 4 if bottleneck else planes
        for j in range(n):
            p = f'layer{i}.{j}'
            convs = ([(planes, cin, 1), (planes, planes, 3), (cout, planes, 1)] if bottleneck else
                     [(planes, cin, 3), (planes, planes, 3)])
            for k, (o, c, size) in enumerate(convs, start=1):
                shapes[f'{p}.conv{k}.weight'] = (o, c, size, size)
                bn(f'{p}.bn{k}', o)
            if j == 0 and (i > 1 or cin != cout):
                shapes[f'{p}.downsample.0.weight'] = (cout, cin, 1, 1)
                bn(f'{p}.downsample.1', cout)
            cin = cout
    shapes.update({'fc.weight': (num_classes, cin), 'fc.bias': (num_classes,)})
    return shapes


def torchvision_vgg16_shapes(num_classes=1000) -> dict:
    """torchvision.models.vgg16().state_dict(): convs at features.0, 2, 5, 7, 10, ...; classifier.0/3/6."""
    widths = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M')
    shapes, index, cin = {}, 0, 3
    for w in widths:
        if w != 'M':
            shapes.update({f'features.{index}.weight': (w, cin, 3, 3), f'features.{index}.bias': (w,)})
            index, cin = index + 2, w  # conv, ReLU
        else:
            index += 1
    for i, (out, inp) in zip((0, 3, 6), ((4096, 512 * 7 * 7), (4096, 4096), (num_classes, 4096))):
        shapes.update({f'classifier.{i}.weight': (out, inp), f'classifier.{i}.bias': (out,)})
    return shapes


def torchvision_alexnet_shapes(num_classes=1000) -> dict:
    """torchvision.models.alexnet(): convs at features.0, 3, 6, 8, 10; linears at classifier.1, 4, 6."""
    shapes = {}
    for i, (out, inp, k) in zip((0, 3, 6, 8, 10), ((64, 3, 11), (192, 64, 5), (384, 192, 3), (256, 384, 3),
                                                   (256, 256, 3))):
        shapes.update({f'features.{i}.weight': (out, inp, k, k), f'features.{i}.bias': (out,)})
    for i, (out, inp) in zip((1, 4, 6), ((4096, 256 * 6 * 6), (4096, 4096), (num_classes, 4096))):
        shapes.update({f'classifier.{i}.weight': (out, inp), f'classifier.{i}.bias': (out,)})
    return shapes


def _basic_conv2d(shapes, name, cin, cout, kernel):
    """torchvision's BasicConv2d: ``name.conv`` (no bias) and ``name.bn``."""
    kh, kw = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    shapes[f'{name}.conv.weight'] = (cout, cin, kh, kw)
    shapes.update({f'{name}.bn.{k}': (cout,) for k in ('weight', 'bias', 'running_mean', 'running_var')})
    shapes[f'{name}.bn.num_batches_tracked'] = ()


def torchvision_googlenet_shapes(aux_logits=True, num_classes=1000) -> dict:
    """torchvision.models.googlenet(): its Inception(in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
    arguments, written out; the "5x5" branch has a 3x3 kernel there."""
    modules = [('inception3a', 192, 64, 96, 128, 16, 32, 32), ('inception3b', 256, 128, 128, 192, 32, 96, 64),
               ('inception4a', 480, 192, 96, 208, 16, 48, 64), ('inception4b', 512, 160, 112, 224, 24, 64, 64),
               ('inception4c', 512, 128, 128, 256, 24, 64, 64), ('inception4d', 512, 112, 144, 288, 32, 64, 64),
               ('inception4e', 528, 256, 160, 320, 32, 128, 128), ('inception5a', 832, 256, 160, 320, 32, 128, 128),
               ('inception5b', 832, 384, 192, 384, 48, 128, 128)]
    shapes = {}
    for name, cin, cout, k in (('conv1', 3, 64, 7), ('conv2', 64, 64, 1), ('conv3', 64, 192, 3)):
        _basic_conv2d(shapes, name, cin, cout, k)
    for name, cin, n1, r3, n3, r5, n5, pool in modules:
        for sub, a, b, k in (('branch1', cin, n1, 1), ('branch2.0', cin, r3, 1), ('branch2.1', r3, n3, 3),
                             ('branch3.0', cin, r5, 1), ('branch3.1', r5, n5, 3), ('branch4.1', cin, pool, 1)):
            _basic_conv2d(shapes, f'{name}.{sub}', a, b, k)
    if aux_logits:
        for name, cin in (('aux1', 512), ('aux2', 528)):
            _basic_conv2d(shapes, f'{name}.conv', cin, 128, 1)
            shapes.update({f'{name}.fc1.weight': (1024, 2048), f'{name}.fc1.bias': (1024,),
                           f'{name}.fc2.weight': (num_classes, 1024), f'{name}.fc2.bias': (num_classes,)})
    shapes.update({'fc.weight': (num_classes, 1024), 'fc.bias': (num_classes,)})
    return shapes


def torchvision_inception_v3_shapes(aux_logits=True, num_classes=1000) -> dict:
    """torchvision.models.inception_v3(): InceptionA-E and InceptionAux's BasicConv2d layers, written out."""
    shapes = {}

    def convs(prefix, *layers):
        for name, cin, cout, kernel in layers:
            _basic_conv2d(shapes, f'{prefix}{name}', cin, cout, kernel)

    def inception_a(m, cin, pool):
        convs(f'{m}.', ('branch1x1', cin, 64, 1), ('branch5x5_1', cin, 48, 1), ('branch5x5_2', 48, 64, 5),
              ('branch3x3dbl_1', cin, 64, 1), ('branch3x3dbl_2', 64, 96, 3), ('branch3x3dbl_3', 96, 96, 3),
              ('branch_pool', cin, pool, 1))

    def inception_c(m, c7):
        convs(f'{m}.', ('branch1x1', 768, 192, 1), ('branch7x7_1', 768, c7, 1), ('branch7x7_2', c7, c7, (1, 7)),
              ('branch7x7_3', c7, 192, (7, 1)), ('branch7x7dbl_1', 768, c7, 1), ('branch7x7dbl_2', c7, c7, (7, 1)),
              ('branch7x7dbl_3', c7, c7, (1, 7)), ('branch7x7dbl_4', c7, c7, (7, 1)),
              ('branch7x7dbl_5', c7, 192, (1, 7)), ('branch_pool', 768, 192, 1))

    def inception_e(m, cin):
        convs(f'{m}.', ('branch1x1', cin, 320, 1), ('branch3x3_1', cin, 384, 1), ('branch3x3_2a', 384, 384, (1, 3)),
              ('branch3x3_2b', 384, 384, (3, 1)), ('branch3x3dbl_1', cin, 448, 1), ('branch3x3dbl_2', 448, 384, 3),
              ('branch3x3dbl_3a', 384, 384, (1, 3)), ('branch3x3dbl_3b', 384, 384, (3, 1)),
              ('branch_pool', cin, 192, 1))

    convs('', ('Conv2d_1a_3x3', 3, 32, 3), ('Conv2d_2a_3x3', 32, 32, 3), ('Conv2d_2b_3x3', 32, 64, 3),
          ('Conv2d_3b_1x1', 64, 80, 1), ('Conv2d_4a_3x3', 80, 192, 3))
    inception_a('Mixed_5b', 192, 32)
    inception_a('Mixed_5c', 256, 64)
    inception_a('Mixed_5d', 288, 64)
    convs('Mixed_6a.', ('branch3x3', 288, 384, 3), ('branch3x3dbl_1', 288, 64, 1), ('branch3x3dbl_2', 64, 96, 3),
          ('branch3x3dbl_3', 96, 96, 3))
    for m, c7 in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160), ('Mixed_6e', 192)):
        inception_c(m, c7)
    if aux_logits:
        convs('AuxLogits.', ('conv0', 768, 128, 1), ('conv1', 128, 768, 5))
        shapes.update({'AuxLogits.fc.weight': (num_classes, 768), 'AuxLogits.fc.bias': (num_classes,)})
    convs('Mixed_7a.', ('branch3x3_1', 768, 192, 1), ('branch3x3_2', 192, 320, 3), ('branch7x7x3_1', 768, 192, 1),
          ('branch7x7x3_2', 192, 192, (1, 7)), ('branch7x7x3_3', 192, 192, (7, 1)), ('branch7x7x3_4', 192, 192, 3))
    inception_e('Mixed_7b', 1280)
    inception_e('Mixed_7c', 2048)
    shapes.update({'fc.weight': (num_classes, 2048), 'fc.bias': (num_classes,)})
    return shapes


@pytest.mark.parametrize('name,fields,shapes,count', [  # parameter counts: torchvision's model table
    ('resnet18', {}, torchvision_resnet_shapes((2, 2, 2, 2), bottleneck=False), 11_689_512),
    ('resnet50', {}, torchvision_resnet_shapes((3, 4, 6, 3), bottleneck=True), 25_557_032),
    ('vgg16', {}, torchvision_vgg16_shapes(), 138_357_544),
    ('alexnet', {}, torchvision_alexnet_shapes(), 61_100_840),
    ('googlenet', {}, torchvision_googlenet_shapes(), 13_004_888),  # GoogLeNet() with its aux heads
    ('googlenet', {'aux_logits': False}, torchvision_googlenet_shapes(aux_logits=False), 6_624_904),
    ('inception_v3', {}, torchvision_inception_v3_shapes(), 27_161_264),
    # torchvision drops AuxLogits (3,326,696 parameters: conv0, conv1, fc) for aux_logits=False
    ('inception_v3', {'aux_logits': False}, torchvision_inception_v3_shapes(aux_logits=False), 23_834_568),
], ids=lambda v: v if isinstance(v, str) else None)
def test_torchvision_state_dict_loads_strict(name, fields, shapes, count):
    with torch.device('meta'):  # shapes and names only: no 138M-parameter allocation
        twin = create_torch_model(name, num_classes=1000, **fields)
        state_dict = {k: torch.empty(s, dtype=torch.int64 if k.endswith('tracked') else torch.float32)
                      for k, s in shapes.items()}
    twin.load_state_dict(state_dict, strict=True)
    assert list(twin.state_dict()) == list(shapes)
    assert sum(p.numel() for p in twin.parameters()) == count


def test_torchvision_inception_v3_converts_without_a_template():
    """torch_to_flax traces the ImageNet Inception v3 at 299 pixels, the least its auxiliary head takes."""
    shapes = torchvision_inception_v3_shapes(num_classes=10)
    state_dict = {k: np.zeros(s, np.int64 if k.endswith('tracked') else np.float32) for k, s in shapes.items()}
    variables = torch_to_flax(state_dict, create_model('inception_v3', num_classes=10))
    assert variables['params']['AuxLogits']['fc']['kernel'].shape == (768, 10)


def test_full_depth_resnet50_converts_into_its_twin():
    """The key map of the full ResNet-50 (CASES runs a shallower one) fits the twin, strict."""
    model = create_model('resnet50', num_classes=1000)
    state_dict = flax_to_torch(random_variables(shapes_of(model, 32)), model)
    with torch.device('meta'):
        twin = torch_twin(model)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=True, assign=True)
    assert list(state_dict) == list(torchvision_resnet_shapes((3, 4, 6, 3), bottleneck=True))


@pytest.mark.parametrize('name,residual,last', [('resnet20', 'standard', 'bn2'), ('resnet20', 'preact', 'bn2'),
                                                 ('resnet50', 'standard', 'bn3'),
                                                 ('resnet20', 'inverted_bottleneck', 'project_bn')])
def test_zero_init_last_bn_zeroes_the_same_bn_as_cnnzoo(name, residual, last):
    """The BN whose scale cnnzoo's ``zero_init_last_bn`` zeroes (resnet.py's ``last=True``)."""
    twin = create_torch_model(name, num_classes=10, residual=residual, zero_init_last_bn=True)
    zeroed = {k.rsplit('.', 2)[-2] for k, v in twin.state_dict().items()
              if k.startswith('layer') and k.endswith('.weight') and v.ndim == 1 and not v.any()}
    assert zeroed == {last}


def test_activation_tables_agree():
    assert list(torch_layers.ACTIVATIONS) == list(ACTIVATIONS)
    x = np.linspace(-4, 4, 101, dtype=np.float32)
    for name, fn in ACTIVATIONS.items():
        assert relative_error(torch_layers.ACTIVATIONS[name](torch.from_numpy(x)).numpy(), fn(x)) < 1e-6, name


@pytest.mark.parametrize('alpha_over_n', [False, True])
def test_local_response_norm_matches_torch(alpha_over_n):
    lrn = LocalResponseNorm(alpha=0.1, alpha_over_n=alpha_over_n)  # a large alpha makes the sum matter
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 9)).astype(np.float32) * 3
    ours = lrn.apply({}, x)
    theirs = torch_lrn(lrn)(nchw(x)).numpy().transpose(0, 2, 3, 1)
    assert relative_error(theirs, ours) < 1e-6
    assert relative_error(theirs, x) > 0.01


@pytest.fixture(scope='module')
def resnet20_pair():
    model = create_model('resnet20', num_classes=10)
    shapes = shapes_of(model, 32)
    return model, shapes, flax_to_torch(random_variables(shapes), model)


def test_conversion_errors_are_one_line(resnet20_pair):
    model, shapes, state_dict = resnet20_pair
    cases = {
        'missing keys: layer1.0.conv1.weight': {k: v for k, v in state_dict.items() if k != 'layer1.0.conv1.weight'},
        'unexpected keys: layer9.weight': {**state_dict, 'layer9.weight': np.zeros(3)},
        'shape mismatch at fc': {**state_dict, 'fc.weight': np.zeros((100, 64), np.float32)},
    }
    for message, bad in cases.items():
        with pytest.raises(ConversionError, match=message) as info:
            torch_to_flax(bad, model, template=shapes)
        assert '\n' not in str(info.value)
    torch_to_flax({k: v for k, v in state_dict.items() if 'num_batches' not in k}, model, template=shapes)


def test_families_without_a_twin_fail_clearly():
    import flax.linen as nn

    class Other(nn.Module):
        @nn.compact
        def __call__(self, x, *, train):
            return x

    with pytest.raises(ValueError, match='no PyTorch twin for Other models yet; families with one: ResNet, VGG, '
                                         'AlexNet, GoogLeNet, InceptionV3'):
        torch_twin(Other())
    with pytest.raises(ValueError, match='no PyTorch key map for Other'):
        key_map(Other())
    with pytest.raises(ValueError, match='unknown model'):
        create_torch_model('no_such_model', num_classes=10)


def test_conversion_needs_no_torch(resnet20_pair):
    """torch -> cnnzoo on numpy arrays works where torch cannot be imported."""
    _, _, state_dict = resnet20_pair
    code = ('import sys, pickle; sys.modules["torch"] = None\n'
            'from cnnzoo.models import create_model\n'
            'from cnnzoo.torch import torch_to_flax\n'
            'sd = pickle.loads(sys.stdin.buffer.read())\n'
            'v = torch_to_flax(sd, create_model("resnet20", num_classes=10))\n'
            'print(v["params"]["head"]["kernel"].shape)')
    import pickle

    out = subprocess.run([sys.executable, '-c', code], input=pickle.dumps(state_dict), capture_output=True,
                         check=False, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert out.stdout.decode().strip() == '(64, 10)'


def test_importing_cnnzoo_does_not_import_torch():
    code = 'import cnnzoo, cnnzoo.models, cnnzoo.run.loop, cnnzoo.torch, sys; assert "torch" not in sys.modules'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, check=False, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]



def test_recording_a_run_does_not_import_torch_and_torch_imports_after(tmp_path):
    # tensorboardX imports PyTorch wherever it is installed; the run's metrics log keeps it out (a
    # second and a half of every run) and leaves PyTorch importable afterwards.
    code = f"""if True:
        import sys
        from cnnzoo.run.workdir import MetricsLog
        log = MetricsLog({str(tmp_path)!r}, resume_step=0)
        log.write({{'step': 1, 'split': 'train', 'loss': 2.5}})
        log.close()
        assert 'torch' not in sys.modules and 'tensorboardX' in sys.modules
        import torch
        print(torch.ones(2).sum().item())
    """
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, check=False, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == '2.0', out.stderr[-2000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / 'tb'))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars('train/loss')] == [(1, 2.5)]

# --- fine-tuning from a torchvision checkpoint ------------------------------------------------


def tiny_dataset():
    from cnnzoo.data import Dataset

    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(8, dtype=np.int32) % 10
    return Dataset(images, labels, images, labels, 10, tuple(map(str, range(10))), (0.5,) * 3, (0.25,) * 3)


def test_finetune_from_torch_checkpoint_through_config(tmp_path, monkeypatch):
    # cnnzoo's own initialisation (its XLA compilation) would take most of this test; a random
    # stand-in of the right shapes plays its part: the head must come out as the stand-in's.
    stand_in = {}

    def init_variables(model, rng, image_shape, **kwargs):
        stand_in.update(random_variables(shapes_of(model, image_shape[0]), seed=5))
        return stand_in

    monkeypatch.setattr('cnnzoo.run.setup.init_variables', init_variables)
    twin = create_torch_model('resnet18', num_classes=1000)  # torchvision's layout and class count
    with torch.no_grad():
        for m in twin.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / 'resnet18.pth'
    torch.save(twin.state_dict(), path)

    config = default_config()
    config.model.name = 'resnet18'
    config.init.torch_checkpoint = str(path)
    config.training.batch_size = 4
    config.training.eval_batch_size = 4
    state = build(config, dataset=tiny_dataset()).state

    model = create_model('resnet18', num_classes=1000)
    expected = flat(torch_to_flax(twin.state_dict(), model))
    got = flat({'params': state.params, 'batch_stats': state.batch_stats})
    assert got.keys() == expected.keys()
    for k in got:
        if "['head']" in k:
            continue
        assert np.array_equal(got[k], expected[k]), k
    head = state.params['head']
    assert head['kernel'].shape == (512, 10)
    assert np.array_equal(head['kernel'], stand_in['params']['head']['kernel'])

    config.init.torch_checkpoint = str(tmp_path / 'missing.pth')
    with pytest.raises(ConfigError, match='torch checkpoint not found'):
        build(config, dataset=tiny_dataset())


class _WouldMakeADirectory:
    """Pickled, it asks the reader to call ``os.mkdir(path)``: what a crafted checkpoint could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize('damage', ['would run code', 'cut short', 'empty', 'garbage'])
def test_a_torch_checkpoint_that_would_run_code_or_is_damaged_is_one_line_and_runs_nothing(damage, tmp_path,
                                                                                            capsys):
    """torch.load with weights_only=True refuses a pickle that names a function; a damaged file is
    one line too. Through a run (config.init.torch_checkpoint): exit status 2, that line, no run."""
    from cnnzoo.torch.convert import load_torch_checkpoint

    made = tmp_path / 'made_by_the_checkpoint'
    path = tmp_path / 'model.pth'
    torch.save({'fc.weight': torch.zeros(2, 2), 'extra': _WouldMakeADirectory(made)}, path)
    whole = path.read_bytes()
    if damage == 'cut short':
        path.write_bytes(whole[:len(whole) // 2])
    elif damage == 'empty':
        path.write_bytes(b'')
    elif damage == 'garbage':
        path.write_bytes(np.random.default_rng(0).integers(0, 256, len(whole), dtype=np.uint8).tobytes())
    with pytest.raises(ConversionError) as e:
        load_torch_checkpoint(str(path))
    message = str(e.value)
    assert '\n' not in message and str(path) in message, message
    assert 'weights_only' not in message  # torch's advice to load it unsafely is not passed on
    if damage == 'would run code':
        assert 'refused' in message and 'posix.mkdir' in message, message
    assert not made.exists()

    if damage == 'would run code':
        from conftest import write_cifar10_python_archive
        from tiny_run import EXPERIMENT

        from cnnzoo.cli import main

        archive = tmp_path / 'cifar-10-python.tar.gz'
        write_cifar10_python_archive(archive, per_batch=4, test=4)
        capsys.readouterr()
        status = main(['train', '--config', EXPERIMENT, '--workdir', str(tmp_path / 'run'),
                       f'--config.data.archive={archive}', f'--config.data.data_dir={tmp_path / "data"}',
                       f'--config.init.torch_checkpoint={path}', '--config.model.stage_sizes=(1, 1, 1)',
                       '--config.training.batch_size=4', '--config.training.num_steps=1'])
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1 and 'refused' in err[0] and str(path) in err[0], err
        assert not made.exists() and not (tmp_path / 'run').exists()


def test_init_from_state_dict_head_and_errors(resnet20_pair):
    model, shapes, state_dict = resnet20_pair
    fresh = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    kept = init_from_state_dict(fresh, state_dict, model, reset_head=False)
    assert np.array_equal(kept['params']['head']['kernel'], state_dict['fc.weight'].T)
    reset = init_from_state_dict(fresh, state_dict, model, reset_head=True)
    assert not np.any(reset['params']['head']['kernel'])
    assert np.array_equal(reset['params']['stem_conv']['kernel'], kept['params']['stem_conv']['kernel'])
    other_classes = {**state_dict, 'fc.weight': np.ones((100, 64), np.float32), 'fc.bias': np.ones(100, np.float32)}
    assert not np.any(init_from_state_dict(fresh, other_classes, model, reset_head=False)['params']['head']['kernel'])
    with pytest.raises(ConversionError, match=re.escape('unexpected keys: extra.weight')):
        init_from_state_dict(fresh, {**state_dict, 'extra.weight': np.zeros(1)}, model)


def test_finetune_experiment_file_loads():
    config = load_config_file(os.path.join(ROOT, 'experiments', 'finetune_torchvision_cifar10.py'))
    assert config.init.torch_checkpoint and config.init.reset_head and config.model.name == 'resnet18'
