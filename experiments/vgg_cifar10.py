r"""VGG depth comparison on CIFAR-10: configurations A, A-LRN, B, C, D, E (Simonyan & Zisserman 2015).

Every configuration with the CIFAR head and the same recipe as experiments/vgg16_cifar10.py
(batch 128, SGD momentum 0.9, weight decay 5e-4, cosine from 0.1 over 200 epochs, crop and flip).
BatchNorm is on (the ``_bn`` models) so that the deep configurations train from scratch without the
paper's staged initialisation; A-LRN keeps the paper's LRN after the first layer.

Run one configuration:
    python scripts/train.py --config experiments/vgg_cifar10.py --workdir runs/vgg13 \
        --config.model.name=vgg13_bn

Run all six (``get_sweep()``, points named by the model) and tabulate:
    python scripts/sweep.py --config experiments/vgg_cifar10.py --workdir runs/vgg_cifar10
    python scripts/report.py runs/vgg_cifar10

Expected: the paper's ImageNet ordering (Table 3, top-1 val. error: A 29.6, A-LRN 29.7, B 28.7,
C 28.1, D 27.0, E 27.3) — LRN does not help, depth helps up to D/E and 1x1 layers (C) help less
than 3x3 (D). On CIFAR-10 the spread is expected to be small (about a point); not yet measured.
"""

from cnnzoo.config import default_config

MODELS = ('vgg11_bn', 'vgg11_lrn_bn', 'vgg13_bn', 'vgg16_1x1_bn', 'vgg16_bn', 'vgg19_bn')


def get_config():
    config = default_config()
    config.model.name = 'vgg16_bn'
    config.model.head = 'cifar'
    config.optimizer.weight_decay = 5e-4
    config.schedule.name = 'cosine'
    config.training.num_steps = 0
    config.training.num_epochs = 200.0
    return config


def get_sweep():
    return [{'model.name': name} for name in MODELS]
