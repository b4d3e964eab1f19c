"""ResNet-50 on ImageNet (ILSVRC-2012) with torchvision's reference recipe, streamed through grain.

Recipe (torchvision's references/classification, the recipe of its ``ResNet50_Weights.IMAGENET1K_V1``
checkpoint): 90 epochs at batch 256 (8 GPUs x 32), SGD with momentum 0.9, weight decay 1e-4 on every
parameter, learning rate 0.1 divided by 10 at epochs 30, 60 and 80 (torchvision's StepLR divides
every 30 epochs, so at 30 and 60 within 90; the third step at 80 is Goyal et al. 2017's); training crop
``RandomResizedCrop(224)`` + horizontal flip, evaluation ``Resize(256)`` + ``CenterCrop(224)``
(the ``imagenet`` preset, cnnzoo.data.images); torchvision's mean/std.

Data: either tensorflow-datasets' ``imagenet2012`` (prepared as ArrayRecord; the first run prepares it
from the two tar files in ``data.manual_dir``, which must be downloaded by hand from image-net.org;
preparing runs tfds' builder, which needs ``pip install -e '.[tfds]'``), or an image folder in torchvision's layout (``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG``), e.g.:

Run:
    python scripts/train.py --config experiments/resnet50_imagenet.py --workdir runs/resnet50_imagenet \
        --config.data.manual_dir=~/imagenet-tars
    python scripts/train.py --config experiments/resnet50_imagenet.py --workdir runs/resnet50_imagenet \
        --config.data.source=folder --config.data.folder=~/imagenet

Check a torchvision checkpoint on the validation images (the same folder), with the PyTorch twin's
agreement:
    python scripts/evaluate.py --config experiments/resnet50_imagenet.py --torch-checkpoint resnet50-0676ba61.pth \
        --config.data.source=folder --config.data.folder=~/imagenet

Expected: 76.13% top-1, 92.86% top-5 (torchvision's documented accuracy of ResNet50_Weights.IMAGENET1K_V1,
trained with this recipe). Not run here: it needs a GPU machine and the ImageNet data.
"""

from cnnzoo.config import default_config


def get_config():
    config = default_config()
    config.model.name = 'resnet50'
    config.data.name = 'imagenet2012'
    config.data.source = 'tfds'
    config.data.loader = 'grain'
    config.data.augment = 'imagenet'
    config.training.batch_size = 256
    config.training.eval_batch_size = 250  # 50,000 validation images in 200 batches
    config.training.num_epochs = 90.0
    config.training.num_steps = 0
    config.training.checkpoint_every_steps = 2000
    config.training.log_every_steps = 100
    config.schedule.name = 'piecewise'
    config.schedule.boundaries_epochs = (30, 60, 80)
    config.schedule.decay_factor = 0.1
    config.optimizer.learning_rate = 0.1
    config.optimizer.weight_decay = 1e-4
    return config
