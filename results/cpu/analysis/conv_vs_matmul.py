"""lax convolution against im2col + matmul, forward+backward, over the conv shapes of resnet20 and vgg16."""
import time, numpy as np, jax, jax.numpy as jnp
def t(f, n=5):
    f(); ts=[]
    for _ in range(n):
        t0=time.perf_counter(); f(); ts.append(time.perf_counter()-t0)
    return np.median(ts)*1000
dn = ('NHWC','HWIO','NHWC')
def conv_dot(x, w, pad):
    kh, kw = w.shape[:2]; b, h, wd, c = x.shape
    xp = jnp.pad(x, ((0,0), pad[0], pad[1], (0,0)))
    oh, ow = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    cols = jnp.concatenate([xp[:, i:i+oh, j:j+ow, :] for i in range(kh) for j in range(kw)], axis=-1)
    return jnp.dot(cols.reshape(-1, kh*kw*c), w.reshape(kh*kw*c, -1)).reshape(b, oh, ow, -1)
print('load', open('/proc/loadavg').read().strip())
for (H, C) in [(32,16),(16,32),(8,64),(32,64),(16,128),(8,256),(4,512),(8,512),(4,256)]:
    x = jax.random.normal(jax.random.PRNGKey(0), (128,H,H,C)); w = jax.random.normal(jax.random.PRNGKey(1), (3,3,C,C))*0.01
    g = jax.random.normal(jax.random.PRNGKey(2), (128,H,H,C))
    c1 = lambda x, w: jax.lax.conv_general_dilated(x, w, (1,1), ((1,1),(1,1)), dimension_numbers=dn)
    c2 = lambda x, w: conv_dot(x, w, ((1,1),(1,1)))
    res = []
    for c in (c1, c2):
        f = jax.jit(lambda x, w, g: jax.vjp(c, x, w)[1](g) + (c(x, w),))
        res.append(t(lambda: jax.block_until_ready(f(x, w, g))))
    print(f'H{H} C{C}: conv fwd+bwd {res[0]:7.1f} ms   im2col+dot {res[1]:7.1f} ms   ratio {res[1]/res[0]:.2f}', flush=True)
print('load', open('/proc/loadavg').read().strip())
