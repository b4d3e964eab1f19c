"""BatchNorm (+ReLU) forward and backward alone: flax nn.BatchNorm against torch F.batch_norm."""
import os, time, numpy as np, jax, jax.numpy as jnp, flax.linen as nn, torch, torch.nn.functional as F
torch.set_num_threads(len(os.sched_getaffinity(0)))
def t(f, n=15):
    f(); f(); ts=[]
    for _ in range(n):
        t0=time.perf_counter(); f(); ts.append(time.perf_counter()-t0)
    return np.median(ts)*1000
print('load', open('/proc/loadavg').read().strip())
for shape in [(128,32,32,16),(128,16,16,32),(128,8,8,64)]:
    x = jax.random.normal(jax.random.PRNGKey(0), shape); g = jax.random.normal(jax.random.PRNGKey(1), shape)
    bn = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
    v = bn.init(jax.random.PRNGKey(0), x)
    def f(p, x):
        y, upd = bn.apply({'params': p, 'batch_stats': v['batch_stats']}, x, mutable=['batch_stats'])
        return y, upd
    fwd = jax.jit(lambda p, x: f(p, x)[0])
    def fb(p, x, g):
        y, vjp_fn, upd = jax.vjp(lambda p, x: f(p, x), p, x, has_aux=True)
        return vjp_fn(g), upd
    fwdbwd = jax.jit(fb)
    # relu(bn(x)) fwd+bwd
    from cnnzoo.models.layers import relu
    def fbr(p, x, g):
        y, vjp_fn, upd = jax.vjp(lambda p, x: (relu(f(p, x)[0]), f(p, x)[1]), p, x, has_aux=True)
        return vjp_fn(g), upd
    fwdbwd_relu = jax.jit(fbr)
    p = v['params']
    tx = torch.randn(shape[0], shape[3], shape[1], shape[2], requires_grad=True); tg = torch.randn_like(tx)
    w = torch.ones(shape[3], requires_grad=True); b = torch.zeros(shape[3], requires_grad=True)
    rm, rv = torch.zeros(shape[3]), torch.ones(shape[3])
    def tfwd():
        with torch.no_grad(): F.batch_norm(tx, rm, rv, w, b, training=True)
    def tfb():
        y = F.batch_norm(tx, rm, rv, w, b, training=True); torch.autograd.grad(y, (tx, w, b), tg)
    def tfbr():
        y = F.relu(F.batch_norm(tx, rm, rv, w, b, training=True)); torch.autograd.grad(y, (tx, w, b), tg)
    J = lambda fn, *a: t(lambda: jax.block_until_ready(fn(*a)))
    print(shape, f'JAX bn fwd {J(fwd,p,x):5.2f} fwd+bwd {J(fwdbwd,p,x,g):5.2f} +relu {J(fwdbwd_relu,p,x,g):5.2f} | torch bn fwd {t(tfwd):5.2f} fwd+bwd {t(tfb):5.2f} +relu {t(tfbr):5.2f}', flush=True)
print('load', open('/proc/loadavg').read().strip())
