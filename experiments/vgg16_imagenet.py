"""VGG-16 (configuration D of Simonyan & Zisserman 2015, torchvision's layout) on ImageNet, streamed.

Recipe (torchvision's references/classification for ``VGG16_Weights.IMAGENET1K_V1``): 90 epochs at
batch 256, SGD with momentum 0.9, weight decay 1e-4, learning rate 0.01 divided by 10 every 30 epochs;
the ``imagenet`` crops (224). The paper trained at batch 256 with learning rate 1e-2 divided by 10
three times when the validation accuracy stopped improving (74 epochs), weight decay 5e-4, and
initialised the deeper configurations from configuration A.

Run:
    python scripts/train.py --config experiments/vgg16_imagenet.py --workdir runs/vgg16_imagenet \
        --config.data.source=folder --config.data.folder=~/imagenet
    python scripts/evaluate.py --config experiments/vgg16_imagenet.py --torch-checkpoint vgg16-397923af.pth \
        --config.data.source=folder --config.data.folder=~/imagenet

Expected: 71.59% top-1, 90.38% top-5 (torchvision's documented accuracy of VGG16_Weights.IMAGENET1K_V1;
the paper's Table 3 gives 27.0% top-1 error for D at a single 256 scale, with its own test-time
procedure). Not run here: it needs a GPU machine and the ImageNet data.
"""

import os

from cnnzoo.config import load_config_file


def get_config():
    # the recipe of experiments/alexnet_imagenet.py (torchvision's for both), with VGG-16
    config = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'alexnet_imagenet.py'))
    config.model.name = 'vgg16'
    return config
