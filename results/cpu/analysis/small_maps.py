"""3x3 convolution on small maps: lax.conv_general_dilated against im2col + one matmul (fwd, bwd, error)."""
import time, numpy as np, jax, jax.numpy as jnp, re
def t(f, n=5):
    f(); ts=[]
    for _ in range(n):
        t0=time.perf_counter(); f(); ts.append(time.perf_counter()-t0)
    return np.median(ts)*1000
dn = ('NHWC','HWIO','NHWC')
def conv_dot(x, w, pad):
    kh, kw = w.shape[:2]
    b, h, wd, c = x.shape
    xp = jnp.pad(x, ((0,0), pad[0], pad[1], (0,0)))
    oh, ow = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    cols = jnp.concatenate([xp[:, i:i+oh, j:j+ow, :] for i in range(kh) for j in range(kw)], axis=-1)
    return jnp.dot(cols.reshape(-1, kh*kw*c), w.reshape(kh*kw*c, -1)).reshape(b, oh, ow, -1)
for H in [1, 2, 4]:
    x = jax.random.normal(jax.random.PRNGKey(0), (128,H,H,512)); w = jax.random.normal(jax.random.PRNGKey(1), (3,3,512,512))*0.01
    g = jax.random.normal(jax.random.PRNGKey(2), (128,H,H,512))
    c1 = lambda x, w: jax.lax.conv_general_dilated(x, w, (1,1), ((1,1),(1,1)), dimension_numbers=dn)
    c2 = lambda x, w: conv_dot(x, w, ((1,1),(1,1)))
    out = []
    for c in (c1, c2):
        f = jax.jit(c); fb = jax.jit(lambda x, w, g: jax.vjp(c, x, w)[1](g))
        out.append((f(x, w), *fb(x, w, g)))
        print(H, c is c1 and 'conv' or 'dot ', f'fwd {t(lambda: jax.block_until_ready(f(x, w))):8.1f} ms  bwd {t(lambda: jax.block_until_ready(fb(x, w, g))):8.1f} ms', flush=True)
    print('   rel err', [float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a))) for a, b in zip(*out)])
