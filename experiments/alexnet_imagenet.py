"""AlexNet (torchvision's layout) on ImageNet with torchvision's reference recipe, streamed.

Recipe (torchvision's references/classification for ``AlexNet_Weights.IMAGENET1K_V1``): 90 epochs at
batch 256, SGD with momentum 0.9, weight decay 1e-4, learning rate 0.01 divided by 10 every 30
epochs; the ``imagenet`` crops (224); dropout 0.5 in the classifier (the model's own).

Run:
    python scripts/train.py --config experiments/alexnet_imagenet.py --workdir runs/alexnet_imagenet \
        --config.data.source=folder --config.data.folder=~/imagenet
    python scripts/evaluate.py --config experiments/alexnet_imagenet.py --torch-checkpoint alexnet-owt-7be5be79.pth \
        --config.data.source=folder --config.data.folder=~/imagenet

Expected: 56.52% top-1, 79.07% top-5 (torchvision's documented accuracy of AlexNet_Weights.IMAGENET1K_V1).
Krizhevsky et al. (2012, Table 2) report 40.7% top-1 error for one network on the ILSVRC-2012
validation set, with their own (two-GPU, LRN) architecture and 10-crop testing; this single-crop
recipe and layout are torchvision's. Not run here: it needs a GPU machine and the ImageNet data.
"""

import os

from cnnzoo.config import load_config_file


def get_config():
    # torchvision's recipe of experiments/resnet50_imagenet.py, with AlexNet's rate and steps
    config = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'resnet50_imagenet.py'))
    config.model.name = 'alexnet'
    config.optimizer.learning_rate = 0.01
    config.schedule.boundaries_epochs = (30, 60)
    return config
