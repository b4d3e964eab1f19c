"""Pieces the model families share: the activation table, a torch-padded convolution, PyTorch's
pooling semantics and PyTorch's default initialisation."""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp


# The one table from name to function; every `activation` field is resolved here.
ACTIVATIONS = {
    'relu': nn.relu,
    'leaky_relu': functools.partial(nn.leaky_relu, negative_slope=0.01),  # torch's default slope
    'sigmoid': nn.sigmoid,
    'tanh': jnp.tanh,
    'gelu': functools.partial(nn.gelu, approximate=False),  # the exact erf form, torch's default
    'silu': nn.silu,
    'elu': nn.elu,
}


def get_activation(name: str):
    """The function called ``name`` in ``ACTIVATIONS``; an unknown name is a one-line ValueError."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f'unknown activation {name!r}; known activations: {", ".join(ACTIVATIONS)}') from None


# torchvision initialises convolutions with kaiming_normal_(mode='fan_out', nonlinearity='relu').
conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def conv(features: int, kernel: int, stride: int = 1, *, name: str, dtype=jnp.float32,
         kernel_init=conv_init) -> nn.Conv:
    """A bias-free square convolution padded by ``kernel // 2`` on every side, as in PyTorch.

    The padding is explicit because 'SAME' pads (0, 1) for a stride of 2 on even sizes where
    PyTorch pads (1, 1); that would shift every strided layer by a pixel against torchvision.
    """
    pad = kernel // 2
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                   padding=((pad, pad), (pad, pad)), use_bias=False, kernel_init=kernel_init,
                   dtype=dtype, param_dtype=jnp.float32, name=name)


# PyTorch's default for nn.Conv2d and nn.Linear (kaiming_uniform_ with a=sqrt(5)): weights
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)), i.e. variance 1/(3 fan_in); fan_in counts one group's inputs.
torch_default_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')


def torch_default_bias_init(fan_in: int):
    """PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in as for the kernel."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def adaptive_avg_pool(x, output_size: int):
    """PyTorch's ``AdaptiveAvgPool2d``: bin i spans [floor(i*H/out), ceil((i+1)*H/out))."""
    h, w = x.shape[1:3]

    def bins(n):
        return [((i * n) // output_size, -(-((i + 1) * n) // output_size)) for i in range(output_size)]

    rows = [jnp.mean(x[:, a:b], axis=1) for a, b in bins(h)]
    grid = [[jnp.mean(r[:, a:b], axis=1) for a, b in bins(w)] for r in rows]
    return jnp.stack([jnp.stack(row, axis=1) for row in grid], axis=1)


def pooled_size(size: int, window: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> int:
    """Output length of PyTorch's ``MaxPool2d`` along one axis (dilation 1)."""
    span = size + 2 * padding - window
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    # PyTorch drops a last window that would start in the right padding.
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def torch_max_pool(x, window: int, stride: int, *, padding: int = 0, ceil_mode: bool = False):
    """PyTorch's ``MaxPool2d(window, stride, padding, ceil_mode)`` on NHWC input.

    flax's ``max_pool`` has no ceil mode; here the extra windows that ceil mode adds are made by
    padding the bottom/right edges with -inf (never the maximum), so the output equals PyTorch's.
    """
    pads = []
    for size in x.shape[1:3]:
        out = pooled_size(size, window, stride, padding, ceil_mode)
        pads.append((padding, max(padding, (out - 1) * stride + window - size - padding)))
    return nn.max_pool(x, (window, window), strides=(stride, stride), padding=pads)
