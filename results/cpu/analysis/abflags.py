"""Interleaved A/B of XLA compiler options in one process, via .compile(compiler_options=...)."""
import os, sys, time, json, numpy as np, jax, jax.numpy as jnp
from cnnzoo.models import create_model
from cnnzoo.training import init_variables, cross_entropy
B = int(os.environ.get('B', 128)); ROUNDS = int(os.environ.get('ROUNDS', 6)); MODEL = os.environ.get('MODEL', 'resnet20')
WHAT = os.environ.get('WHAT', 'fwdbwd')
model = create_model(MODEL, num_classes=10)
v = init_variables(model, jax.random.PRNGKey(0), (32, 32, 3))
x = jax.random.normal(jax.random.PRNGKey(1), (B, 32, 32, 3)); y = jnp.zeros((B,), jnp.int32)
def fwdbwd(params, bs, x, y):
    def loss(p):
        logits, upd = model.apply({'params': p, 'batch_stats': bs}, x, train=True, mutable=['batch_stats'])
        return cross_entropy(logits, y).mean(), upd
    return jax.grad(loss, has_aux=True)(params)
def fwd(params, bs, x, y):
    return model.apply({'params': params, 'batch_stats': bs}, x, train=True, mutable=['batch_stats'])[0]
fn = {'fwdbwd': fwdbwd, 'fwd': fwd}[WHAT]
variants = [('default', {})] + [(a, json.loads(a)) for a in sys.argv[1:]]
lowered = jax.jit(fn).lower(v['params'], v['batch_stats'], x, y)
comp = {}
for name, opts in variants:
    t0 = time.perf_counter()
    try:
        c = lowered.compile(compiler_options=opts)
    except Exception as e:
        print(f'{name}: compile failed: {str(e)[:300]}'); continue
    args = (v['params'], v['batch_stats'], x, y)
    out = jax.block_until_ready(c(*args)); jax.block_until_ready(c(*args))
    comp[name] = c
    leaves = jax.tree_util.tree_leaves(out)
    if name == 'default': ref = leaves
    else: print(f'{name}: max diff vs default {max(float(jnp.max(jnp.abs(a-b))) for a,b in zip(leaves, ref)):.3g}')
    print(f'{name}: compile {time.perf_counter()-t0:.1f}s', flush=True)
print('load', open('/proc/loadavg').read().strip())
ts = {n: [] for n in comp}
for r in range(ROUNDS):
    for n, c in comp.items():
        t0 = time.perf_counter(); jax.block_until_ready(c(*args)); ts[n].append(time.perf_counter() - t0)
base = np.median(ts['default'])
for n in comp:
    a = np.array(ts[n]) * 1000
    print(f'{np.median(a):7.1f} ms (min {a.min():7.1f})  x{np.median(a)/base/1000:.2f}  {n}')
print('load', open('/proc/loadavg').read().strip())
