"""Normalisation layers: local response normalisation, and BatchNorm with PyTorch's running variance.

Local response normalisation across channels (Krizhevsky, Sutskever, Hinton 2012, §3.3):

    b[c] = a[c] / (k + alpha' * sum_{c' in window(c)} a[c']**2) ** beta

with a window of ``size`` channels around ``c`` (zero beyond the edges). The paper's constants are
k=2, n=5, alpha=1e-4, beta=0.75, and its formula uses alpha as it stands (``alpha_over_n=False``,
the default here). PyTorch's ``nn.LocalResponseNorm`` divides alpha by n (``alpha_over_n=True``);
set it when porting torch code or weights. The window is placed as PyTorch places it: ``size // 2``
channels before ``c`` and ``(size - 1) // 2`` after.

:class:`BatchNorm` is flax's ``nn.BatchNorm`` with one more field, ``running_var``: which batch
variance the running average takes. Both libraries normalise a training batch by its *biased*
variance and keep an exponential average of the statistics (flax ``momentum=0.9`` is torch's
``momentum=0.1``), but flax averages the biased variance and PyTorch the *unbiased* one
(``* n / (n - 1)``, n = the values per channel: batch x height x width). ``running_var='biased'``
(the default) is flax's, bit for bit; ``'unbiased'`` is PyTorch's, for porting a torch recipe
exactly: its running statistics, and so its eval-mode outputs, then follow torch's.
"""

from __future__ import annotations

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.normalization import _canonicalize_axes, _compute_stats, _normalize

RUNNING_VARS = ('biased', 'unbiased')
RunningVar = Literal[RUNNING_VARS]


class LocalResponseNorm(nn.Module):
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0
    alpha_over_n: bool = False

    @nn.compact
    def __call__(self, x):
        squares = jnp.square(x.astype(jnp.float32))
        before, after = self.size // 2, (self.size - 1) // 2
        padded = jnp.pad(squares, [(0, 0)] * (x.ndim - 1) + [(before, after)])
        channels = x.shape[-1]
        window = sum(padded[..., i:i + channels] for i in range(self.size))
        alpha = self.alpha / self.size if self.alpha_over_n else self.alpha
        return (x.astype(jnp.float32) / (self.k + alpha * window) ** self.beta).astype(x.dtype)


class BatchNorm(nn.BatchNorm):
    """``nn.BatchNorm`` (same fields, variables and numerics) plus ``running_var``: 'biased' as
    flax, 'unbiased' as PyTorch (see the module docstring). Built on flax 0.12's own statistics and
    normalisation helpers, so the default is exactly ``nn.BatchNorm``; cross-device reductions
    (``axis_name``) and masks are not offered (cnnzoo shards with ``jax.sharding``, where the batch
    axis of a BN input is the global batch)."""

    running_var: RunningVar = 'biased'

    @nn.compact
    def __call__(self, x, use_running_average: bool | None = None, *, mask: jax.Array | None = None):
        if mask is not None:
            raise ValueError('cnnzoo BatchNorm takes no mask: every position of the batch counts')
        if self.running_var not in RUNNING_VARS:
            raise ValueError(f'BatchNorm running_var must be one of {RUNNING_VARS}, got {self.running_var!r}')
        if self.axis_name is not None or self.axis_index_groups is not None:
            raise ValueError('cnnzoo BatchNorm takes no axis_name: shard the batch with jax.sharding instead')
        use_running_average = nn.merge_param('use_running_average', self.use_running_average,
                                             use_running_average)
        feature_axes = _canonicalize_axes(x.ndim, self.axis)
        reduction_axes = tuple(i for i in range(x.ndim) if i not in feature_axes)
        feature_shape = [x.shape[ax] for ax in feature_axes]
        stats_dtype = jnp.float32 if self.force_float32_reductions else self.param_dtype
        ra_mean = self.variable('batch_stats', 'mean', lambda s: jnp.zeros(s, stats_dtype), feature_shape)
        ra_var = self.variable('batch_stats', 'var', lambda s: jnp.ones(s, stats_dtype), feature_shape)
        if use_running_average:
            mean, var = (jnp.asarray(v.value, stats_dtype) for v in (ra_mean, ra_var))
        else:
            mean, var = _compute_stats(x, reduction_axes, dtype=self.dtype, axis_name=None,
                                       use_fast_variance=self.use_fast_variance,
                                       force_float32_reductions=self.force_float32_reductions)
            if not self.is_initializing():
                averaged = var
                if self.running_var == 'unbiased':
                    n = 1
                    for axis in reduction_axes:
                        n *= x.shape[axis]
                    averaged = var * (n / max(n - 1, 1))
                ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
                ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * averaged
        return _normalize(self, x, mean, var, reduction_axes, feature_axes, self.dtype, self.param_dtype,
                          self.epsilon, self.use_bias, self.use_scale, self.bias_init, self.scale_init,
                          self.force_float32_reductions)
