r"""He et al. (2016) Table 6 and Figure 6: CIFAR-10 ResNets and plain nets of depth 6n+2.

One recipe for every depth (§4.2): batch 128, SGD momentum 0.9, weight decay 1e-4, learning rate
0.1 divided by 10 at 32k and 48k iterations, 64k iterations in all; pad-4 crop and flip. The
network is chosen by override:

    python scripts/train.py --config experiments/he2016_cifar10.py --workdir runs/resnet56 \
        --config.model.name=resnet56

The whole grid (``get_sweep()``: every depth, points named by the model, ``resnet110-warmup1.0``
for the one with a warm-up), or a part of it, and its table and Figure-6-style plots:

    python scripts/sweep.py --config experiments/he2016_cifar10.py --workdir runs/he2016 \
        --only 'resnet20*,plain20*' --seeds 0,1,2
    python scripts/report.py runs/he2016

Expected, from the paper (Table 6, test error on the original CIFAR-10; a little worse on a JPEG copy):
    resnet20 8.75%   resnet32 7.51%   resnet44 7.17%   resnet56 6.97%   resnet110 6.43%
    resnet1202 7.93%; plain nets get *worse* with depth (Figure 6: plain56 trains and tests worse
    than plain20 — the degradation problem).

Deviation: for resnet110 the paper warms up at 0.01 until training error is below 80% (about 400
iterations) and then returns to 0.1; the sweep below uses a fixed linear warm-up of one epoch
(390 iterations) instead, which serves the same purpose without reading the training error.
"""

from cnnzoo.config import default_config

DEPTHS = ('resnet20', 'resnet32', 'resnet44', 'resnet56', 'resnet110', 'plain20', 'plain32',
          'plain44', 'plain56', 'plain110')


def get_config():
    config = default_config()
    config.model.name = 'resnet20'
    return config


def get_sweep():
    """The grid of Table 6 / Figure 6 as override dicts (scripts/sweep.py; the form: cnnzoo.studies.sweep)."""
    sweep = []
    for name in DEPTHS:
        overrides = {'model.name': name}
        if name == 'resnet110':
            overrides['schedule.warmup_epochs'] = 1.0
        sweep.append(overrides)
    return sweep
