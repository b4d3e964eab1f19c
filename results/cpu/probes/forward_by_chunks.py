import time, sys, numpy as np, jax, jax.numpy as jnp
from jax import lax
from cnnzoo.models import layers
N, H, C, K = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
x = jax.random.normal(jax.random.key(0), (N, H, H, C)); w = jax.random.normal(jax.random.key(1), (3, 3, C, K))
pads = ((1, 1), (1, 1))
def xla(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=layers._NHWC)
def chunked(chunk):
    def f(x, w):
        def one(images):
            windows = layers._windows(jnp.pad(images, ((0, 0), *pads, (0, 0))), (3, 3), (1, 1))
            patches = jnp.concatenate(windows, axis=-1)
            return lax.dot_general(patches, w.reshape(-1, K), (((3,), (0,)), ((), ())))
        out = lax.map(one, x.reshape(N // chunk, chunk, *x.shape[1:]))
        return out.reshape(N, H, H, K)
    return f
def taps(x, w):
    # sum over the 9 taps of shifted input @ w[i,j]
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    ws = layers._windows(xp, (3, 3), (1, 1))
    return sum(lax.dot_general(v, w[i // 3, i % 3], (((3,), (0,)), ((), ()))) for i, v in enumerate(ws))
def timeit(f, reps=9):
    f = jax.jit(f); f(x, w).block_until_ready()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(x, w).block_until_ready(); ts.append(time.perf_counter() - t)
    return 1000 * float(np.median(ts))
ref = jax.jit(xla)(x, w)
print('xla', round(timeit(xla), 1))
print('taps', round(timeit(taps), 1), float(jnp.abs(jax.jit(taps)(x, w) - ref).max()))
for c in (1, 2, 4, 8, 16, 128):
    f = chunked(c)
    print('chunk', c, round(timeit(f), 1), float(jnp.abs(jax.jit(f)(x, w) - ref).max()))
