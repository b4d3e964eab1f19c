r"""ResNet-20 on CIFAR-10, activation x residual form, one epoch: the CPU-scale miniature of
experiments/resnet18_ablation.py.

The grid (``get_sweep()``, 16 points): ``model.activation`` relu, leaky_relu, tanh, sigmoid x
``model.residual`` standard (act(F(x)+x)), relu_before_add (act(F(x))+x), square (act(F(x)+x²)),
inverted_bottleneck (MobileNetV2's inverted residual, expansion 6). Recipe: He et al. (2016) §4.2 as
in experiments/resnet20_cifar10.py (batch 128, SGD momentum 0.9, weight decay 1e-4, learning rate
0.1, crop and flip), squeezed into one epoch: the 2:1:1 schedule runs its three phases within it.

Run (about 5 minutes a run on two CPU cores, so 16 runs x 1 seed take over an hour) and tabulate:
    python scripts/sweep.py --config experiments/resnet20_ablation.py --workdir runs/resnet20_ablation
    python scripts/report.py runs/resnet20_ablation

Expected: not yet measured as a grid. The relu / standard point is the one-epoch run of BENCHMARKS.md,
53.60% test accuracy; one epoch ranks the forms by how fast they start to learn, not by where they end.
"""

from cnnzoo.config import default_config

ACTIVATIONS = ('relu', 'leaky_relu', 'tanh', 'sigmoid')
RESIDUALS = ('standard', 'relu_before_add', 'square', 'inverted_bottleneck')


def get_config():
    config = default_config()
    config.model.name = 'resnet20'
    config.training.num_steps = 0
    config.training.num_epochs = 1.0
    return config


def get_sweep():
    return [{'model.activation': activation, 'model.residual': residual}
            for activation in ACTIVATIONS for residual in RESIDUALS]
