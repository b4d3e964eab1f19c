"""Pieces the model families share: the activation table and a torch-padded convolution."""

from __future__ import annotations

import functools

import flax.linen as nn
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


def conv(features: int, kernel: int, stride: int = 1, *, name: str, dtype=jnp.float32) -> nn.Conv:
    """A bias-free square convolution padded by ``kernel // 2`` on every side, as in PyTorch.

    The padding is explicit because 'SAME' pads (0, 1) for a stride of 2 on even sizes where
    PyTorch pads (1, 1); that would shift every strided layer by a pixel against torchvision.
    """
    pad = kernel // 2
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                   padding=((pad, pad), (pad, pad)), use_bias=False, kernel_init=conv_init,
                   dtype=dtype, param_dtype=jnp.float32, name=name)
