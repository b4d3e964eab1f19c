"""VGG-16 with BatchNorm and the CIFAR head on CIFAR-10 — the seeds' VGG16.

Configuration D of Simonyan & Zisserman (2015, Table 1) with BatchNorm after every convolution and
the 32x32 head (after five pools the map is 1x1x512, then one linear layer). Recipe as commonly
used with this network (kuangliu/pytorch-cifar): batch 128, SGD momentum 0.9, weight decay 5e-4,
learning rate 0.1 with cosine decay over 200 epochs, pad-4 crop and flip.

Run:
    python scripts/train.py --config experiments/vgg16_cifar10.py --workdir runs/vgg16_cifar10

Expected: about 92.6% test accuracy on the original data after 200 epochs (kuangliu/pytorch-cifar
reports 92.64% for VGG16); not yet measured with cnnzoo.
"""

from cnnzoo.config import default_config


def get_config():
    config = default_config()
    config.model.name = 'vgg16_bn'
    config.model.head = 'cifar'
    config.optimizer.weight_decay = 5e-4
    config.schedule.name = 'cosine'
    config.training.num_steps = 0
    config.training.num_epochs = 200.0
    return config
