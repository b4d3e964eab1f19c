"""GoogLeNet (Szegedy et al. 2015, torchvision's layout) with the CIFAR stem on CIFAR-10 — the
seeds' GoogLeNet.

The CIFAR adaptation (``cifar_fields('googlenet')``: ``stem='cifar'``; kuangliu/pytorch-cifar's
layout, a deviation from the paper): one 3x3/1 convolution to 192 channels replaces the 7x7/2 stem
and its two max-pools, so modules 3a-3b run at 32x32, 4a-4e at 16x16 and 5a-5b at 8x8. The two
auxiliary heads are kept and add 0.3 x their cross-entropy to the training loss (they read 16x16
maps, pooled to 4x4); 9,841,470 parameters at 10 classes, 4,350,484 of them in the auxiliary heads,
which evaluation does not use. kuangliu's network itself is ``--config.model.aux_logits=False
--config.model.branch3=double_3x3`` (up to details listed in cnnzoo/models/googlenet.py).

Recipe as for the other BatchNorm networks of the comparison (kuangliu/pytorch-cifar's main.py):
batch 128, SGD momentum 0.9, weight decay 5e-4, learning rate 0.1 with cosine decay over 200
epochs, pad-4 crop and flip.

Run:
    python scripts/train.py --config experiments/googlenet_cifar10.py --workdir runs/googlenet_cifar10

Expected: not yet measured with cnnzoo, and no published figure is known for this exact network
(kuangliu's README lists none for GoogLeNet). An estimate only: near the BatchNorm networks of
similar depth trained this way (kuangliu: ResNet18 93.02%, DenseNet121 95.04%).
"""

from cnnzoo.config import default_config


def get_config():
    config = default_config()
    config.model.name = 'googlenet'
    config.model.stem = 'cifar'
    config.optimizer.weight_decay = 5e-4
    config.schedule.name = 'cosine'
    config.training.num_steps = 0
    config.training.num_epochs = 200.0
    return config
