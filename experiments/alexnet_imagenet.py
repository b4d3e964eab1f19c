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

from cnnzoo.config import default_config


def get_config():
    config = default_config()
    config.model.name = 'alexnet'
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
