"""Where the step time goes, JAX vs torch, interleaved in one process (resnet20, batch 128)."""
import os, time, numpy as np, jax, jax.numpy as jnp, torch, torch.nn.functional as F
from cnnzoo.models import create_model, cifar_fields
from cnnzoo.training import init_variables, cross_entropy
from cnnzoo.torch import create_torch_model
torch.set_num_threads(len(os.sched_getaffinity(0)))
B = int(os.environ.get('B', 128)); MODEL = os.environ.get('MODEL', 'resnet20'); ROUNDS = int(os.environ.get('ROUNDS', 8))
model = create_model(MODEL, num_classes=10, **cifar_fields(MODEL))
v = init_variables(model, jax.random.PRNGKey(0), (32, 32, 3))
x = jax.random.normal(jax.random.PRNGKey(1), (B, 32, 32, 3)); y = jnp.zeros((B,), jnp.int32)
def loss(p, bs, x, y):
    logits, upd = model.apply({'params': p, 'batch_stats': bs}, x, train=True, mutable=['batch_stats'])
    return cross_entropy(logits, y).mean(), upd
fwd = jax.jit(lambda p, bs, x, y: loss(p, bs, x, y)[0])
full = jax.jit(lambda p, bs, x, y: jax.grad(loss, has_aux=True)(p, bs, x, y))
def nokernel(p, bs, x, y):
    def l(p):
        p = jax.tree_util.tree_map_with_path(lambda path, a: jax.lax.stop_gradient(a) if 'kernel' in str(path[-1]) and a.ndim == 4 else a, p)
        return loss(p, bs, x, y)
    return jax.grad(l, has_aux=True)(p)
nok = jax.jit(nokernel)
def inputgrad(p, bs, x, y):  # gradient w.r.t. input only: dX path, no dW anywhere
    return jax.grad(lambda x: loss(jax.lax.stop_gradient(p), bs, x, y)[0])(x)
dxonly = jax.jit(inputgrad)
args = (v['params'], v['batch_stats'], x, y)
tm = create_torch_model(MODEL, num_classes=10, **cifar_fields(MODEL)).train()
tx = torch.randn(B, 3, 32, 32); ty = torch.zeros(B, dtype=torch.long)
convs = [m.weight for m in tm.modules() if isinstance(m, torch.nn.Conv2d)]
def t_fwd():
    with torch.no_grad(): F.cross_entropy(tm(tx), ty)
def t_full():
    for w in convs: w.requires_grad_(True)
    tm.zero_grad(set_to_none=True); F.cross_entropy(tm(tx), ty).backward()
def t_nok():
    for w in convs: w.requires_grad_(False)
    tm.zero_grad(set_to_none=True); F.cross_entropy(tm(tx), ty).backward()
    for w in convs: w.requires_grad_(True)
txg = tx.clone().requires_grad_(True)
def t_dx():
    for p in tm.parameters(): p.requires_grad_(False)
    F.cross_entropy(tm(txg), ty).backward()
    for p in tm.parameters(): p.requires_grad_(True)
cases = {'jax fwd': lambda: jax.block_until_ready(fwd(*args)), 'jax fwd+bwd': lambda: jax.block_until_ready(full(*args)),
         'jax bwd w/o conv dW': lambda: jax.block_until_ready(nok(*args)), 'jax dX only': lambda: jax.block_until_ready(dxonly(*args)),
         'torch fwd': t_fwd, 'torch fwd+bwd': t_full, 'torch bwd w/o conv dW': t_nok, 'torch dX only': t_dx}
for f in cases.values(): f(); f()
print('load', open('/proc/loadavg').read().strip())
ts = {k: [] for k in cases}
for r in range(ROUNDS):
    for k, f in cases.items():
        t0 = time.perf_counter(); f(); ts[k].append(time.perf_counter() - t0)
for k in cases: print(f'{k:24s} {np.median(ts[k])*1000:7.1f} ms  (p10 {np.percentile(ts[k],10)*1000:6.1f}, p90 {np.percentile(ts[k],90)*1000:6.1f})')
print('load', open('/proc/loadavg').read().strip())
