r"""ResNet-18 (CIFAR stem) on CIFAR-10: learning-rate schedule x activation x augmentation, and the
residual and plain variants — the ablation of a student report the seeds cite.

The grid (``get_sweep()``, 42 points):
- main grid, 3 x 4 x 3 = 36 points: ``schedule.ratio`` '2:1:1', '5:3:2', '5:4:1' (the run cut into
  phases at 0.1, 0.01 and 0.001 in those proportions) x ``model.activation`` sigmoid, tanh, relu,
  leaky_relu x ``data.augment`` none, crop_flip_color_blur, crop_flip;
- residual variants at ReLU, crop+flip, 2:1:1: ``model.residual`` = 'relu_before_add' (ReLU(F(x))+x),
  'square' (ReLU(F(x)+x²)), 'inverted_bottleneck' (MobileNetV2's inverted residual);
- plain networks at the same settings: plain18, resnet34, plain34 against resnet18 (the main grid's
  relu / 2:1:1 / crop_flip point, which is also ``get_config()``).

Recipe (ours: the report gives no seeds, epochs or batch size): experiments/resnet18_cifar10.py's
network and optimizer (batch 128, SGD momentum 0.9, weight decay 5e-4, learning rate 0.1) with the
step schedule by ratio in place of cosine, 100 epochs, seeds 0, 1 and 2.

Run (42 points x 3 seeds; about 126 GPU-hours at an assumed hour per 100-epoch run) and tabulate:
    python scripts/sweep.py --config experiments/resnet18_ablation.py --workdir runs/resnet18_ablation \
        --seeds 0,1,2
    python scripts/report.py runs/resnet18_ablation
The main grid alone: ``--only 'sigmoid*,tanh*,relu-*,leaky_relu*'``; the variants: ``--only
'relu_before_add,square,inverted_bottleneck,plain*,resnet34'``.

The report augments by *expanding* the training set once (the originals plus one crop+flip copy:
100k images; plus a second copy with colour change and blur: 150k) rather than drawing fresh
augmentations every step. ``--config.data.augment_mode=expand`` runs the whole grid that way (an
epoch is then a pass over the expanded set, so 100 epochs are two or three times the steps); the
default, ``online``, is the usual per-step augmentation.

Expected, not yet measured with cnnzoo. The reference is a student report the seeds cite, ResNet-18
test accuracy (%), one run each as far as the report says:

    augmentation            activation   2:1:1   5:3:2   5:4:1
    none                    sigmoid      87.25   87.41   88.08
                            tanh         91.68   91.71   91.70
                            ReLU         94.42   94.51   94.40
                            LeakyReLU    94.41   94.54   94.28
    crop+flip+colour+blur   sigmoid      86.94   88.07   87.16
                            tanh         91.35   90.97   91.28
                            ReLU         93.12   93.51   93.15
                            LeakyReLU    93.22   93.51   93.45
    crop+flip               sigmoid      88.92   89.00   89.12
                            tanh         92.12   92.54   92.84
                            ReLU         94.98   94.99   95.14
                            LeakyReLU    94.68   94.92   94.77

Its variants that did not help: ReLU(F(x))+x "about the same" as the standard block, ReLU(F(x)+x²)
"bad", the inverted bottleneck reported without a number. The report's colour/blur augmentation is
not specified further; ours is cnnzoo.data.augmentation's ``crop_flip_color_blur``.
"""

import os

from cnnzoo.config import load_config_file

HERE = os.path.dirname(os.path.abspath(__file__))
RATIOS = ('2:1:1', '5:3:2', '5:4:1')
ACTIVATIONS = ('sigmoid', 'tanh', 'relu', 'leaky_relu')
AUGMENTATIONS = ('none', 'crop_flip_color_blur', 'crop_flip')
RESIDUAL_VARIANTS = ('relu_before_add', 'square', 'inverted_bottleneck')
PLAIN_VARIANTS = ('plain18', 'resnet34', 'plain34')


def get_config():
    config = load_config_file(os.path.join(HERE, 'resnet18_cifar10.py'))  # resnet18, stem='cifar'
    config.schedule.name = 'ratio'
    config.schedule.ratio = '2:1:1'
    config.schedule.decay_factor = 0.1
    config.model.activation = 'relu'
    config.data.augment = 'crop_flip'
    config.training.num_steps = 0
    config.training.num_epochs = 100.0
    return config


def get_sweep():
    grid = [{'model.activation': activation, 'schedule.ratio': ratio, 'data.augment': augment}
            for augment in AUGMENTATIONS for activation in ACTIVATIONS for ratio in RATIOS]
    grid += [{'model.residual': residual} for residual in RESIDUAL_VARIANTS]
    grid += [{'model.name': name} for name in PLAIN_VARIANTS]
    return grid
