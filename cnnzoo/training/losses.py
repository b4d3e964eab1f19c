"""Criteria by name (``config.training.loss``): per-example losses of ``(logits, integer labels)``.

Each criterion is a function ``loss(logits, labels, **params) -> (B,)`` registered in :data:`LOSSES`
with the config keys it reads; its keyword arguments are named by the last part of those keys
(``training.label_smoothing`` -> ``label_smoothing``). :func:`make_loss` binds them from a config.
The train step averages the per-example losses over the batch, and adds each auxiliary head's mean
loss (GoogLeNet, Inception v3) with the head's weight, with the same criterion
(:mod:`cnnzoo.training.steps`). An evaluation records the run's criterion without label smoothing,
a regulariser of training only. :func:`cnnzoo.config.validate` refuses, up front, a criterion's
parameter set away from its default for a criterion that does not read it (label smoothing with
the hinge loss, a focal gamma with cross-entropy): such a value would be silently ignored.

The criteria, each with its twin in PyTorch (:mod:`cnnzoo.torch.losses`; tests/test_torch_parity.py
checks the loss and its gradient with respect to the logits for every name here):

- ``cross_entropy``: softmax cross-entropy, optionally against smoothed targets (Szegedy et al.
  2016): ``optax.softmax_cross_entropy``; the default, and the step's loss before criteria had names.
- ``focal``: focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection"), in its softmax
  form ``-(1 - p_y)^gamma log p_y``: the paper states it for the sigmoid (binary) case and notes
  that it extends to the multi-class case; optax has only the sigmoid form. No alpha weighting (the
  paper's class balance term: CIFAR's classes are balanced). ``gamma = 0`` is cross-entropy.
- ``squared_error``: the squared error of the *logits* against one-hot targets, averaged over the
  classes: per batch, PyTorch's ``nn.MSELoss()(logits, one_hot)``. On logits rather than softmax
  probabilities because that is the form shown to train classifiers as well as cross-entropy (Hui
  & Belkin 2021, "Evaluation of Neural Architectures Trained with Square Loss vs Cross-Entropy in
  Classification Tasks"; without their rescaling for many classes). Through a softmax the loss
  is bounded and its gradient vanishes where the network is confidently wrong (the softmax
  saturated at another class), which Golik et al. (2013, "Cross-Entropy vs. Squared Error
  Training") give as the reason squared error on softmax outputs trains poorly from a random start.
- ``hinge``: the multi-class hinge loss of Crammer & Singer (2001), ``max(0, 1 + max_{j != y} s_j -
  s_y)``: the largest violation only (``optax.losses.multiclass_hinge_loss``). Weston & Watkins'
  form, which sums the violations of every class (PyTorch's ``nn.MultiMarginLoss``, divided by
  the class count), is not offered.
- ``poly1``: Poly-1 cross-entropy (Leng et al. 2022, "PolyLoss"): cross-entropy plus ``epsilon *
  (1 - p_y)``, ``p_y`` taken against the (smoothed) targets as in the paper's code
  (``optax.losses.poly_loss_cross_entropy``); ``epsilon >= -1`` keeps the loss decreasing in p_y.
  The paper tunes epsilon per task; the schema's default is 1 (optax's own default is 2).

Logits are cast to float32 before any loss, whatever the compute dtype. JAX and optax are imported
inside the functions: ``cnnzoo train --help`` reads this registry and must not start JAX.
"""

from __future__ import annotations

from collections.abc import Callable

from cnnzoo.registry import Registry

LOSSES = Registry('loss', 'training.loss')


def _targets(logits, labels, label_smoothing: float = 0.0):
    import jax
    import jax.numpy as jnp
    import optax

    targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
    return optax.smooth_labels(targets, label_smoothing) if label_smoothing else targets


@LOSSES.register('cross_entropy', params=('training.label_smoothing',))
def cross_entropy(logits, labels, *, label_smoothing: float = 0.0):
    """softmax cross-entropy, with label smoothing (Szegedy et al. 2016) when training.label_smoothing > 0"""
    import jax.numpy as jnp
    import optax

    return optax.softmax_cross_entropy(logits.astype(jnp.float32), _targets(logits, labels, label_smoothing))


@LOSSES.register('focal', params=('training.focal_gamma',))
def focal(logits, labels, *, focal_gamma: float = 2.0):
    """focal loss (Lin et al. 2017), softmax form: -(1 - p_y)^gamma log p_y (training.focal_gamma)"""
    import jax
    import jax.numpy as jnp

    logits = logits.astype(jnp.float32)
    total = jax.nn.logsumexp(logits, axis=-1)
    label = jax.nn.one_hot(labels, logits.shape[-1], dtype=bool)
    log_p = jnp.sum(jnp.where(label, logits, 0.0), axis=-1) - total
    # log(1 - p_y) as the log-sum-exp of the other classes' logits minus that of all: exact where p_y
    # rounds to 1 (1 - p_y would be 0 there), and (1 - p_y)^gamma = exp(gamma * log(1 - p_y)) has a
    # finite gradient for every gamma >= 0 (pow's is infinite at 0 for gamma < 1).
    log_q = jax.nn.logsumexp(jnp.where(label, -jnp.inf, logits), axis=-1) - total
    return -jnp.exp(focal_gamma * log_q) * log_p


@LOSSES.register('squared_error')
def squared_error(logits, labels):
    """squared error of the logits against one-hot targets, averaged over the classes (Hui & Belkin 2021)"""
    import jax.numpy as jnp
    import optax

    return optax.squared_error(logits.astype(jnp.float32), _targets(logits, labels)).mean(axis=-1)


@LOSSES.register('hinge')
def hinge(logits, labels):
    """multi-class hinge loss of Crammer & Singer (2001): max(0, 1 + max_{j != y} s_j - s_y)"""
    import jax.numpy as jnp
    import optax

    return optax.losses.multiclass_hinge_loss(logits.astype(jnp.float32), labels)


@LOSSES.register('poly1', params=('training.label_smoothing', 'training.poly1_epsilon'))
def poly1(logits, labels, *, label_smoothing: float = 0.0, poly1_epsilon: float = 1.0):
    """Poly-1 cross-entropy (Leng et al. 2022): cross-entropy + epsilon (1 - p_y) (training.poly1_epsilon)"""
    import jax.numpy as jnp
    import optax

    return optax.losses.poly_loss_cross_entropy(logits.astype(jnp.float32), _targets(logits, labels, label_smoothing),
                                                epsilon=poly1_epsilon)


def config_value(config, key: str):
    """The value of a dotted ``key`` ('training.label_smoothing') in ``config``."""
    node = config
    for part in key.split('.'):
        node = node[part]
    return node


def loss_params(config, *, evaluation: bool = False) -> dict:
    """The keyword arguments of the criterion ``config.training.loss``, from ``config`` (label smoothing
    0 for ``evaluation``); the PyTorch twin (:mod:`cnnzoo.torch.losses`) takes the same ones."""
    params = {}
    for key in LOSSES.get(config.training.loss).params:
        name = key.rpartition('.')[2]
        params[name] = 0.0 if evaluation and name == 'label_smoothing' else config_value(config, key)
    return params


def make_loss(config, *, evaluation: bool = False) -> Callable:
    """``loss(logits, labels) -> (B,)``: the criterion ``config.training.loss`` with its parameters
    from ``config``; ``evaluation=True`` leaves label smoothing out."""
    fn, params = LOSSES[config.training.loss], loss_params(config, evaluation=evaluation)
    return lambda logits, labels: fn(logits, labels, **params)
