"""VGG-11 with BatchNorm and the CIFAR head on CIFAR-10, on the student report's ResNet-18 recipe: the
second network of experiments/criteria_optimizers.py.

Configuration A of Simonyan & Zisserman (2015, Table 1) with BatchNorm after every convolution (as
kuangliu/pytorch-cifar's VGG11, a common PyTorch CIFAR baseline; the paper trained A without it, at
a rate of 0.01) and the 32x32 head (after five pools the map is 1x1x512, then one linear layer). The recipe is experiments/resnet18_ablation.py's ``get_config()``: batch 128,
SGD momentum 0.9, weight decay 5e-4, learning rate 0.1 cut by 10 at 50% and 75% of 100 epochs (the
2:1:1 ratio schedule), crop and flip. Only the model section differs.

Run:
    python scripts/train.py --config experiments/vgg11_cifar10.py --workdir runs/vgg11_cifar10

Expected: not yet measured with cnnzoo. kuangliu/pytorch-cifar lists no VGG-11 figure (its VGG16
reaches 92.64% with its own schedule); expect VGG-11 a point or two below VGG-16.
"""

import os

import ml_collections

from cnnzoo.config import load_config_file

HERE = os.path.dirname(os.path.abspath(__file__))


def get_config():
    config = load_config_file(os.path.join(HERE, 'resnet18_ablation.py'))
    config.model = ml_collections.ConfigDict({'name': 'vgg11_bn', 'head': 'cifar'})
    return config
