r"""The seeds' four-model comparison on CIFAR-10: AlexNet, VGG16, GoogLeNet and ResNet-18, each as
its CIFAR variant, trained from scratch with Adam and with SGD.

The grid (``get_sweep()``) is models x optimizers:
- models, each from its own experiment file, which holds the model's CIFAR fields and its SGD
  recipe: ``alexnet`` (experiments/alexnet_cifar10.py), ``vgg16_bn`` with the CIFAR head
  (vgg16_cifar10.py), ``googlenet`` with the CIFAR stem and its auxiliary heads
  (googlenet_cifar10.py), ``resnet18`` with the CIFAR stem (resnet18_cifar10.py);
- ``sgd``: that file's recipe as it stands: batch 128, momentum 0.9, weight decay 5e-4, cosine
  decay over 200 epochs from 0.1 (0.01 for AlexNet, which has no BatchNorm), crop and flip;
- ``adam``: Adam at the seeds' learning rate of 1e-3 with PyTorch's other defaults (betas 0.9 and
  0.999, eps 1e-8, no weight decay), held constant, for the same 200 epochs and augmentation.

A point of the grid is an experiment file plus overrides, ``{'config': FILE, KEY: VALUE, ...}``,
rather than overrides of one config: the four CIFAR variants cannot be stated as overrides of one
model section, because VGG has a ``head`` field and no ``stem`` while ResNet and GoogLeNet have a
``stem`` and no ``head``, and an override cannot remove a field. ``get_config()`` is the point
resnet18 x adam. Every point is one command; GoogLeNet with Adam, for example:

    python scripts/train.py --config experiments/googlenet_cifar10.py --workdir runs/seeds/googlenet_adam \
        --config.optimizer.name=adam --config.optimizer.learning_rate=0.001 \
        --config.optimizer.weight_decay=0.0 --config.schedule.name=constant

The whole grid, each point in runs/seeds/<file>[-adam-lr0.001-wd0.0-constant]/seed<k>, and its table:

    python scripts/sweep.py --config experiments/seeds_comparison.py --workdir runs/seeds
    python scripts/report.py runs/seeds

Expected, not yet measured with cnnzoo. With SGD, the published figures for these recipes are
kuangliu/pytorch-cifar's VGG16 92.64% and ResNet18 93.02% (README; trained 350 epochs with step
decay), with GoogLeNet expected near ResNet-18 and AlexNet, the only network without BatchNorm,
clearly last. Adam at a constant 1e-3 is expected to trail SGD by a point or more for the
BatchNorm networks (Wilson et al. 2017, "The Marginal Value of Adaptive Gradient Methods in
Machine Learning", find adaptive methods generalising worse than tuned SGD on CIFAR-10).
"""

import os

from cnnzoo.config import load_config_file

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = {
    'alexnet': 'alexnet_cifar10.py',
    'vgg16': 'vgg16_cifar10.py',
    'googlenet': 'googlenet_cifar10.py',
    'resnet18': 'resnet18_cifar10.py',
}
OPTIMIZERS = {
    'sgd': {},
    'adam': {'optimizer.name': 'adam', 'optimizer.learning_rate': 1e-3, 'optimizer.weight_decay': 0.0,
             'schedule.name': 'constant'},
}


def get_config():
    config = load_config_file(os.path.join(HERE, MODELS['resnet18']))
    for key, value in OPTIMIZERS['adam'].items():
        section, field = key.split('.')
        config[section][field] = value
    return config


def get_sweep():
    """Every point as an experiment file (path from the repository root) and its overrides."""
    return [{'config': os.path.join('experiments', MODELS[model]), **OPTIMIZERS[optimizer]}
            for model in MODELS for optimizer in OPTIMIZERS]
