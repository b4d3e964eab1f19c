r"""ResNet-20 on CIFAR-10, activation x residual form, one epoch: the CPU-scale miniature of
experiments/resnet18_ablation.py.

The grid (``get_sweep()``, 16 points): ``model.activation`` relu, leaky_relu, tanh, sigmoid x
``model.residual`` standard (act(F(x)+x)), relu_before_add (act(F(x))+x), square (act(F(x)+x²)),
inverted_bottleneck (MobileNetV2's inverted residual, expansion 6). Recipe: He et al. (2016) §4.2 as
in experiments/resnet20_cifar10.py (batch 128, SGD momentum 0.9, weight decay 1e-4, learning rate
0.1, crop and flip), squeezed into one epoch: the 2:1:1 schedule runs its three phases within it.

Run (about 5 minutes a run on two CPU cores, 35-50 for the inverted bottleneck's, so 16 runs x 1
seed take about four hours) and tabulate:
    python scripts/sweep.py --config experiments/resnet20_ablation.py --workdir runs/resnet20_ablation
    python scripts/report.py runs/resnet20_ablation

Expected, as measured (results/studies/resnet20_ablation_cpu, seed 0, the JPEG copy of CIFAR-10), test accuracy %
after one epoch; one epoch ranks the forms by how fast they start to learn, not by where they end:

    activation   standard  relu_before_add  square       inverted_bottleneck
    relu         48.44     28.48            NaN, step 1  55.44
    leaky_relu   51.66     35.23            NaN, step 1  57.49
    tanh         39.80     44.14            42.33        43.32
    sigmoid      35.76     28.50            36.25        39.04

(square with an unbounded activation overflows float32 in the first forward pass: x² compounds
through the nine blocks of a stage.)
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
