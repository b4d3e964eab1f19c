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

from cnnzoo.config import default_config


def get_config():
    config = default_config()
    config.model.name = 'vgg16'
    config.data.name = 'imagenet2012'
    config.data.source = 'tfds'
    config.data.loader = 'grain'
    config.data.augment = 'imagenet'
    config.training.batch_size = 256
    config.training.eval_batch_size = 250
    config.training.num_epochs = 90.0
    config.training.num_steps = 0
    config.training.checkpoint_every_steps = 2000
    config.training.log_every_steps = 100
    config.schedule.name = 'piecewise'
    config.schedule.boundaries_epochs = (30, 60)
    config.schedule.decay_factor = 0.1
    config.optimizer.learning_rate = 0.01
    config.optimizer.weight_decay = 1e-4
    return config
