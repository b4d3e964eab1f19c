"""AlexNet (torchvision's layout) adapted to CIFAR-10 — the seeds' AlexNet.

The CIFAR adaptation (``cifar_fields('alexnet')``: ``stem='cifar'``, ``head='cifar'``; a deviation
from Krizhevsky et al. 2012): conv1 is 3x3/1 instead of 11x11/4, so the three 3x3/2 max-pools leave
15, 7 and 3 pixels, and the classifier (dropout 0.5, two hidden layers of 4096) reads the 3x3x256
map; 28,711,754 parameters at 10 classes. There is no BatchNorm.

Recipe: the SGD settings of Krizhevsky et al. 2012 (§5): batch 128, momentum 0.9, weight decay
5e-4, learning rate 0.01 (a tenth of the BatchNorm networks' 0.1), with cosine decay over 200
epochs in place of the paper's manual divisions by 10; pad-4 crop and flip.

Run:
    python scripts/train.py --config experiments/alexnet_cifar10.py --workdir runs/alexnet_cifar10

Expected: no published figure exists for this adaptation and it has not yet been measured with
cnnzoo; being the shallowest network and the only one without BatchNorm, it should finish below
VGG16, GoogLeNet and ResNet-18 on the same recipe (experiments/seeds_comparison.py).
"""

from cnnzoo.config import default_config


def get_config():
    config = default_config()
    config.model.name = 'alexnet'
    config.model.stem = 'cifar'
    config.model.head = 'cifar'
    config.optimizer.learning_rate = 0.01
    config.optimizer.weight_decay = 5e-4
    config.schedule.name = 'cosine'
    config.training.num_steps = 0
    config.training.num_epochs = 200.0
    return config
