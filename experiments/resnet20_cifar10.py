"""ResNet-20 on CIFAR-10 with He et al. (2016) §4.2's recipe — the default experiment.

Recipe (He et al., "Deep Residual Learning for Image Recognition", §4.2): batch 128, SGD with
momentum 0.9, weight decay 1e-4, learning rate 0.1 divided by 10 at 32k and 48k iterations, stop at
64k (the ratio 2:1:1); 4-pixel padding, random 32x32 crops and horizontal flips; per-channel
normalisation; option-A (parameter-free) shortcuts. Trained on all 50k training images and
evaluated on the 10k test images (the paper fixed its schedule on a 45k/5k split: add
``--config.data.validation_size=5000`` to see that split).

Run:
    python scripts/train.py --config experiments/resnet20_cifar10.py --workdir runs/resnet20_cifar10

Expected: 8.75% test error (91.25% accuracy) in the paper's Table 6 on the original data; expect
a point or two lower on a JPEG-compressed copy. One epoch on CPU reaches >= 40% (BENCHMARKS.md).
"""

from cnnzoo.config import default_config


def get_config():
    config = default_config()  # the schema's defaults are this recipe
    config.model.name = 'resnet20'
    return config
