"""Local response normalisation across channels (Krizhevsky, Sutskever, Hinton 2012, §3.3).

    b[c] = a[c] / (k + alpha' * sum_{c' in window(c)} a[c']**2) ** beta

with a window of ``size`` channels around ``c`` (zero beyond the edges). The paper's constants are
k=2, n=5, alpha=1e-4, beta=0.75, and its formula uses alpha as it stands (``alpha_over_n=False``,
the default here). PyTorch's ``nn.LocalResponseNorm`` divides alpha by n (``alpha_over_n=True``);
set it when porting torch code or weights. The window is placed as PyTorch places it: ``size // 2``
channels before ``c`` and ``(size - 1) // 2`` after.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


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
