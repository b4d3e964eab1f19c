"""Compute dtypes by name (``config.training.dtype``): the dtype of a model's activations and
convolutions. Parameters, BatchNorm statistics, logits and losses stay float32 whatever it is
(cnnzoo.models casts at those points), as mixed-precision training does.

Registered by the name of the JAX dtype; :func:`compute_dtype` resolves it (jax.numpy imported
there: ``cnnzoo train --help`` reads this registry without starting JAX).
"""

from __future__ import annotations

from cnnzoo.registry import Registry

DTYPES = Registry('compute dtype', 'training.dtype')
DTYPES.add('float32', 'float32', help='float32 throughout')
DTYPES.add('bfloat16', 'bfloat16', help='bfloat16 activations and convolutions, float32 parameters and losses '
           '(native on GPUs and on CPUs with AVX512-BF16 or AMX; emulated, and slow, on other CPUs)')


def compute_dtype(name: str):
    """The JAX dtype of ``config.training.dtype`` ``name``."""
    import jax.numpy as jnp

    return jnp.dtype(DTYPES[name])
