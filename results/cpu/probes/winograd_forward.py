"""Winograd F(2x2, 3x3) (Lavin and Gray 2016) for a 3x3 stride-1 'SAME' convolution, written in
jax.numpy, against XLA's convolution on the CPU: the forward, and the forward plus both gradients
(autodiff of the same code: the gradients are Winograd-shaped products too). Over the whole batch
and over chunks of it (lax.map), so that each chunk's transformed tiles stay in cache.
usage: python results/cpu/probes/winograd_forward.py N H C K [N H C K ...]"""
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float32)  # kernel transform
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)  # output transform


def input_transform(rows):
    """B^T applied along one axis of four 4-element rows (the transform's +-1 entries as adds)."""
    r0, r1, r2, r3 = rows
    return [r0 - r2, r1 + r2, r2 - r1, r1 - r3]


def winograd(x, w):
    n, h, wd, c = x.shape
    k = w.shape[-1]
    th, tw = h // 2, wd // 2
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    d = [[xp[:, i:i + 2 * th:2, j:j + 2 * tw:2, :] for j in range(4)] for i in range(4)]  # 4x4 tiles, stride 2
    t = [input_transform([d[i][j] for i in range(4)]) for j in range(4)]
    v = [input_transform([t[j][a] for j in range(4)]) for a in range(4)]
    V = jnp.stack([v[a][b] for a in range(4) for b in range(4)]).reshape(16, n * th * tw, c)
    U = jnp.einsum('ai,ijck,bj->abck', G, w, G).reshape(16, c, k)
    M = lax.dot_general(V, U, (((2,), (1,)), ((0,), (0,)))).reshape(4, 4, n, th, tw, k)
    return jnp.einsum('pa,abnhwk,qb->nhpwqk', AT, M, AT).reshape(n, h, wd, k)


def chunked(chunk):
    def f(x, w):
        out = lax.map(lambda part: winograd(part, w), x.reshape(x.shape[0] // chunk, chunk, *x.shape[1:]))
        return out.reshape(x.shape[0], *out.shape[2:])
    return f


def xla(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def timed(f, *args, reps=9):
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def both_gradients(conv):
    return jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w) ** 2), argnums=(0, 1)))


args = [int(a) for a in sys.argv[1:]]
for n, h, c, k in zip(args[0::4], args[1::4], args[2::4], args[3::4], strict=True):
    x = jax.random.normal(jax.random.key(0), (n, h, h, c))
    w = jax.random.normal(jax.random.key(1), (3, 3, c, k)) * 0.1
    ref = jax.jit(xla)(x, w)
    print(f'{n}x{h}x{h}x{c} -> {k}: ms, median of 9 (largest difference to XLA / largest output)')
    print(f'  xla      forward {timed(jax.jit(xla), x, w):6.1f}   forward+dX+dW {timed(both_gradients(xla), x, w):6.1f}')
    for name, f in [('winograd', winograd)] + [(f'chunk {m}', chunked(m)) for m in (8, 32)]:
        err = float(jnp.max(jnp.abs(jax.jit(f)(x, w) - ref)) / jnp.max(jnp.abs(ref)))
        print(f'  {name:8s} forward {timed(jax.jit(f), x, w):6.1f}   forward+dX+dW {timed(both_gradients(f), x, w):6.1f}'
              f'   ({err:.1e})', flush=True)
