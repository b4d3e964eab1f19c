"""Optimizers by name (``config.optimizer.name``): optax transformations, weight decay through optax
with a mask.

Each optimizer is a function ``(opt_config, learning_rate, mask) -> optax.GradientTransformation``
registered in :data:`OPTIMIZERS` with the ``optimizer.*`` keys it reads (``learning_rate`` is a
float or an optax schedule of the step; ``mask`` says which parameters decay). Conventions, stated
because they decide whether a recipe ports between frameworks (the PyTorch twin of each is in
:mod:`cnnzoo.torch.optim`, and tests/test_torch_parity.py checks three steps of each against it):

- ``sgd``: ``add_decayed_weights`` before ``sgd(momentum, nesterov)``. The decay is added to the
  gradient before momentum, and the momentum buffer is ``m * buf + g``: this is exactly PyTorch's
  ``torch.optim.SGD(weight_decay=..., momentum=..., nesterov=...)`` (dampening 0). Plain SGD is
  ``optimizer.momentum=0`` (PyTorch's ``SGD(momentum=0)``), not a name of its own: one rule, one
  owner (Nesterov's method with momentum 0 is refused, as PyTorch refuses it).
- ``adam``: decay added to the gradient before Adam (PyTorch's ``Adam(weight_decay=...)``, L2).
- ``adamw``: decoupled decay, ``p -= lr * wd * p`` (Loshchilov & Hutter; PyTorch's ``AdamW``).
- ``rmsprop`` (Tieleman & Hinton 2012, lecture 6.5): PyTorch's ``RMSprop`` update rule, composed
  from optax's parts rather than ``optax.rmsprop`` where the two differ. ``v = a v + (1 - a) g^2``
  from ``v = 0`` (``optimizer.rms_decay`` is PyTorch's ``alpha``), no bias correction, and the
  gradient divided by ``sqrt(v) + eps`` (``eps`` outside the root, as PyTorch; optax's default
  puts it inside, ``sqrt(v + eps)``, as TensorFlow's RMSProp). ``centered`` subtracts the squared
  moving mean of the gradients under the root (Graves 2013), as both do. Momentum accumulates the
  scaled gradients *before* the learning rate multiplies them (``buf = m buf + g / (sqrt(v) +
  eps)``, ``p -= lr buf``): PyTorch's order. ``optax.rmsprop`` applies the rate first, which is the
  same step only while the rate is constant. Decay is added to the gradient first (L2), as
  PyTorch's ``weight_decay``. The schema's defaults (decay 0.9, momentum 0.9 shared with sgd) are
  the lecture's and TensorFlow's; PyTorch's own are ``alpha=0.99, momentum=0``.
- ``lars`` (You et al. 2017, "Large Batch Training of Convolutional Networks"): ``optax.lars``.
  Decay added to the gradient (L2), then each parameter tensor's update scaled by its trust ratio
  ``trust_coefficient * |w| / |g + wd w|``, then the rate, then momentum of the scaled updates (the
  paper's Algorithm 1 divides by ``|g| + wd |w|``, the sum of the norms; optax, like SimCLR's LARS
  in google-research/simclr, by the norm of the sum). Decay and the trust ratio apply to the same
  parameters (the mask), as in SimCLR's LARS, whose layer-adaptation exclusions default to its
  weight-decay ones.
- ``lamb`` (You et al. 2020, "Large Batch Optimization for Deep Learning"): ``optax.lamb``. Adam's
  bias-corrected direction ``m / (sqrt(v) + eps)`` plus the decoupled decay ``wd w`` on the masked
  parameters, scaled per tensor by ``|w| / |that sum|``, then the rate: every parameter is adapted
  (optax's mask is the decay's only). The schema's ``eps`` (1e-8) is Adam's; optax's default and
  the paper's BERT code use 1e-6.

PyTorch has neither LARS nor LAMB in ``torch.optim`` (they live in third-party packages: NVIDIA's
apex, timm), so these two have no twin: ``compare-accuracy`` refuses them in one line.

``decay_bn_and_bias`` chooses whether rank-1 parameters (BatchNorm scales/offsets, biases) decay.
optax is imported inside the functions: ``cnnzoo train --help`` reads this registry without JAX.
"""

from __future__ import annotations

from cnnzoo.registry import Registry

OPTIMIZERS = Registry('optimizer', 'optimizer.name')

# What every optimizer reads besides its own keys.
COMMON = ('optimizer.learning_rate', 'optimizer.weight_decay', 'optimizer.decay_bn_and_bias')


@OPTIMIZERS.register('sgd', params=(*COMMON, 'optimizer.momentum', 'optimizer.nesterov'))
def sgd(c, learning_rate, mask):
    """SGD with momentum (0: none) and optional Nesterov; L2 decay added to the gradient (torch.optim.SGD)"""
    import optax

    return optax.chain(optax.add_decayed_weights(c.weight_decay, mask=mask),
                       optax.sgd(learning_rate, momentum=c.momentum or None, nesterov=c.nesterov))


@OPTIMIZERS.register('adam', params=(*COMMON, 'optimizer.b1', 'optimizer.b2', 'optimizer.eps'))
def adam(c, learning_rate, mask):
    """Adam (Kingma & Ba 2015); L2 decay added to the gradient (torch.optim.Adam)"""
    import optax

    return optax.chain(optax.add_decayed_weights(c.weight_decay, mask=mask),
                       optax.adam(learning_rate, b1=c.b1, b2=c.b2, eps=c.eps))


@OPTIMIZERS.register('adamw', params=(*COMMON, 'optimizer.b1', 'optimizer.b2', 'optimizer.eps'))
def adamw(c, learning_rate, mask):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019; torch.optim.AdamW)"""
    import optax

    return optax.adamw(learning_rate, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay, mask=mask)


@OPTIMIZERS.register('rmsprop', params=(*COMMON, 'optimizer.rms_decay', 'optimizer.eps', 'optimizer.centered',
                                        'optimizer.momentum'))
def rmsprop(c, learning_rate, mask):
    """RMSprop (Tieleman & Hinton 2012), optionally centered and with momentum; L2 decay (torch.optim.RMSprop)"""
    import optax

    scale = optax.scale_by_stddev if c.centered else optax.scale_by_rms
    return optax.chain(optax.add_decayed_weights(c.weight_decay, mask=mask),
                       scale(decay=c.rms_decay, eps=c.eps, eps_in_sqrt=False),
                       optax.trace(decay=c.momentum) if c.momentum else optax.identity(),
                       optax.scale_by_learning_rate(learning_rate))


@OPTIMIZERS.register('lars', params=(*COMMON, 'optimizer.momentum', 'optimizer.trust_coefficient'))
def lars(c, learning_rate, mask):
    """LARS (You et al. 2017): layer-wise trust ratio, momentum, L2 decay; no PyTorch twin"""
    import optax

    return optax.lars(learning_rate, weight_decay=c.weight_decay, weight_decay_mask=mask,
                      trust_coefficient=c.trust_coefficient, trust_ratio_mask=mask, momentum=c.momentum)


@OPTIMIZERS.register('lamb', params=(*COMMON, 'optimizer.b1', 'optimizer.b2', 'optimizer.eps'))
def lamb(c, learning_rate, mask):
    """LAMB (You et al. 2020): Adam's direction with layer-wise trust ratio, decoupled decay; no PyTorch twin"""
    import optax

    return optax.lamb(learning_rate, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay, mask=mask)


def decay_mask(params, decay_bn_and_bias: bool):
    """True for the leaves that weight decay applies to: kernels, and 1-D leaves if asked."""
    import jax

    return jax.tree_util.tree_map(lambda p: decay_bn_and_bias or p.ndim > 1, params)


def make_optimizer(opt_config, learning_rate):
    """The optax transformation ``opt_config.name`` names (``opt_config``: ``config.optimizer``);
    ``learning_rate`` is a float or an optax schedule of the step."""
    mask = lambda params: decay_mask(params, opt_config.decay_bn_and_bias)  # noqa: E731
    return OPTIMIZERS[opt_config.name](opt_config, learning_rate, mask)
