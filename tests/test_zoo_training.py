"""Every distinct network of the registry trains through the same train_step on real images and
resumes exactly (models that are the same network once cut to two blocks a stage run once).

Each model runs as its CIFAR adaptation (``cifar_fields(name)``: the CIFAR stem of the ImageNet
ResNets, the CIFAR head of VGG, ...), which is what is trained on these 32x32 images.

For each model: three steps straight, against two steps, a round trip of the state through host
memory (what a checkpoint stores: ``TrainState.checkpoint_items()``), then the third step; the
results must be bitwise equal. This catches any model state or randomness that a checkpoint would
miss (dropout draws from the step's rng, auxiliary heads, BN statistics). The orbax round trip and
the loop itself are tested end to end, with SIGKILL, in test_loop.py.

"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import distinct_networks, registry_params, shortened

from cnnzoo.config import default_config
from cnnzoo.data import augment, epoch_permutation, load_dataset, normalize, take_batch
from cnnzoo.models import cifar_fields, create_model, list_models, min_input_size
from cnnzoo.training import (
    TrainState,
    cross_entropy,
    init_variables,
    make_optimizer,
    make_train_step,
)

BATCH = 8


def trained_model(name: str, num_classes: int = 10):
    """The network this file trains for ``name``: its CIFAR variant, at most two blocks a stage, the
    Inception networks shortened (``conftest.shortened``)."""
    return shortened(create_model(name, num_classes=num_classes, **cifar_fields(name)), blocks=2)


def distinct_models() -> list[str]:
    """Every registered model whose trained network differs from an earlier one's: cut to two blocks
    a stage, resnet56 and resnet1202 are the same network (as resnet101 and resnet152 are resnet50,
    and vgg16 and vgg19 are vgg13), and training it again would test nothing new."""
    return distinct_networks(list_models(), trained_model)


@pytest.fixture(scope='module')
def dataset(tiny_cifar10, tmp_path_factory):
    return load_dataset('cifar10', source='archive', archive=tiny_cifar10,
                        data_dir=str(tmp_path_factory.mktemp('cache')))


def zoo_params():
    """The registry's params, all in the suite: the fast lane trains the resnet20 family end to end
    and resumes it bitwise through orbax (tests/test_api.py's README example against the reference
    run), which covers what resnet20's case here checked (6 s of its CPU); alexnet_2012's layers are
    in the fast lane's model and parity tests."""
    return [pytest.param(*p.values, marks=(*p.marks, pytest.mark.slow)) for p in registry_params(distinct_models())]


@pytest.mark.parametrize('name', zoo_params())
def test_trains_and_resumes_bitwise(name, dataset):
    size = min_input_size(name, cifar=True)
    model = trained_model(name, dataset.num_classes)
    config = default_config()
    tx = make_optimizer(config.optimizer, 0.01)

    def preprocess(rng, images):
        x = normalize(augment(rng, images, 'crop_flip'), dataset.mean, dataset.std)
        if size > x.shape[1]:  # models whose layout needs more than 32 pixels see upsampled CIFAR
            x = jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), 'bilinear')
        return x

    step = jax.jit(make_train_step(preprocess=preprocess, learning_rate_fn=lambda s: 0.01, loss_fn=partial(cross_entropy, label_smoothing=0.1)))
    images, labels = jnp.asarray(dataset.train_images), jnp.asarray(dataset.train_labels)
    perm = epoch_permutation(0, 0, len(images))
    key = jax.random.PRNGKey(0)

    def run(state, steps):
        losses = []
        for i in steps:
            batch = take_batch(images, labels, perm, i, BATCH)
            state, metrics = step(state, batch, jax.random.fold_in(key, i))
            losses.append(float(metrics['loss']))
        return state, losses

    variables = init_variables(model, jax.random.fold_in(key, 99), (size, size, 3))
    start = TrainState.create(apply_fn=model.apply, variables=variables, tx=tx)
    straight, losses = run(start, range(3))
    first, _ = run(start, range(2))
    saved = jax.device_get(first.checkpoint_items())
    resumed, _ = run(start.replace(**jax.tree_util.tree_map(jnp.asarray, saved)), [2])

    assert np.isfinite(losses).all(), losses
    assert int(resumed.step) == int(straight.step) == 3
    for a, b in zip(jax.tree_util.tree_leaves(straight.checkpoint_items()),
                    jax.tree_util.tree_leaves(resumed.checkpoint_items())):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    moved = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), start.params, straight.params)
    assert all(jax.tree_util.tree_leaves(moved)), 'every parameter must move in three steps'
