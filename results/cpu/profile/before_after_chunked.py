"""resnet20 train step with the chunked weight gradient (after) and with XLA's (before, by replacing
layers._weight_grad_by_chunks with XLA's own transpose), and PyTorch eager fp32, interleaved in one process.

    python results/cpu/profile/before_after_chunked.py resnet20 10 torch > results/cpu/profile/before_after_chunked.log 2>&1
"""
import sys, time, numpy as np, jax
from jax import lax
from cnnzoo.models import layers
from cnnzoo.bench.speed import make_variant
from cnnzoo.bench.variants import synthetic_data
model = sys.argv[1]; steps = int(sys.argv[2])
with open("/proc/loadavg") as f: print("load before:", f.read().strip(), flush=True)
images, labels = synthetic_data(1024)
kw = dict(batch_size=128, images=images, labels=labels, warmup=2)
after = make_variant(model, 'jax-fp32', **kw)
orig = layers._weight_grad_by_chunks
def xla_dw(lhs, grad, kernel_shape, strides, pads, precision):
    import jax.numpy as jnp
    w0 = jnp.zeros(kernel_shape, lhs.dtype)
    _, vjp = jax.vjp(lambda w: lax.conv_general_dilated(lhs, w, strides, pads, dimension_numbers=layers._NHWC, precision=precision), w0)
    return vjp(grad)[0]
layers._weight_grad_by_chunks = xla_dw
before = make_variant(model, 'jax-fp32', **kw)
layers._weight_grad_by_chunks = orig
torch = make_variant(model, 'torch-eager-fp32', **kw) if len(sys.argv) > 3 else None
vs = {'before': before, 'after': after}
if torch: vs['torch'] = torch
ts = {k: [] for k in vs}
for r in range(steps):
    for k, v in vs.items():
        t = time.perf_counter(); v.train_step(); ts[k].append(time.perf_counter() - t)
for k in ts: print(model, k, f'{np.median(ts[k])*1e3:.1f} ms')
with open('/proc/loadavg') as f:
    print('load after:', f.read().strip(), flush=True)
