"""ResNet-18 (torchvision layout) with the CIFAR stem on CIFAR-10 — the seeds' "ResNet18 on CIFAR-10".

The CIFAR stem replaces the 7x7/2 convolution and max-pool with a 3x3/1 convolution, so the four
stages run at 32, 16, 8 and 4 pixels (11,173,962 parameters at 10 classes). Recipe as commonly used
with this network (e.g. kuangliu/pytorch-cifar): batch 128, SGD momentum 0.9, weight decay 5e-4,
learning rate 0.1 with cosine decay over 200 epochs, pad-4 crop and flip.

Run:
    python scripts/train.py --config experiments/resnet18_cifar10.py --workdir runs/resnet18_cifar10

Expected: at least 93% test accuracy on the original data after 200 epochs (kuangliu/pytorch-cifar's
README lists 93.02% for its ResNet18 on CIFAR-10); not yet measured with cnnzoo — a GPU run is
pending (issue 5).
"""

from cnnzoo.config import default_config


def get_config():
    config = default_config()
    config.model.name = 'resnet18'
    config.model.stem = 'cifar'
    config.optimizer.weight_decay = 5e-4
    config.schedule.name = 'cosine'
    config.training.num_steps = 0
    config.training.num_epochs = 200.0
    return config
