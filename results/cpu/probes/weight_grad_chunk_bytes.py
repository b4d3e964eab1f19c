import time, sys, numpy as np, jax, jax.numpy as jnp
from jax import lax
from cnnzoo.models import layers
N, H, C, K = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
x = jax.random.normal(jax.random.key(0), (N, H, H, C)); g = jax.random.normal(jax.random.key(1), (N, H, H, K))
pads = ((1, 1), (1, 1))
def xla_dw(x, g):
    w0 = jnp.zeros((3, 3, C, K))
    _, vjp = jax.vjp(lambda w: lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=layers._NHWC), w0)
    return vjp(g)[0]
def timeit(f, reps=7):
    f = jax.jit(f); f(x, g).block_until_ready()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(x, g).block_until_ready(); ts.append(time.perf_counter() - t)
    return 1000 * float(np.median(ts))
print('xla', round(timeit(xla_dw), 1))
for b in (2**17, 2**18, 2**19, 2**20, 2**21, 2**22, 2**23, 2**25):
    layers.WEIGHT_GRAD_CHUNK_BYTES = b
    f = lambda x, g: layers._weight_grad_by_chunks(x, g, (3, 3, C, K), (1, 1), pads, None)
    print('chunk bytes', b, round(timeit(f), 1))
