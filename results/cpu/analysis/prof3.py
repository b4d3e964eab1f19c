"""Per-thunk profile of resnet20/vgg (WHAT=fwd|dx|full); run with XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true."""
import os, glob, shutil, re, collections
import numpy as np, jax, jax.numpy as jnp
from cnnzoo.models import create_model, cifar_fields
from cnnzoo.training import init_variables, cross_entropy
from jax.profiler import ProfileData
if os.environ.get('RELU') == 'max':  # cnnzoo before issue 4
    from cnnzoo.models import layers
    layers.ACTIVATIONS['relu'] = jax.nn.relu
if os.environ.get('CONV') == 'lax':  # every convolution through lax.conv_general_dilated (before issue 4)
    from cnnzoo.models import layers, vgg
    layers.conv_general_dilated = vgg.conv_general_dilated = jax.lax.conv_general_dilated
B = 128; MODEL = os.environ.get('MODEL', 'resnet20')
model = create_model(MODEL, num_classes=10, **cifar_fields(MODEL))
v = init_variables(model, jax.random.PRNGKey(0), (32, 32, 3))
x = jax.random.normal(jax.random.PRNGKey(1), (B, 32, 32, 3)); y = jnp.zeros((B,), jnp.int32)
def loss(p, bs, x, y):
    logits, upd = model.apply({'params': p, 'batch_stats': bs}, x, train=True, mutable=['batch_stats'])
    return cross_entropy(logits, y).mean(), upd
WHAT = os.environ.get('WHAT', 'dx')
if WHAT == 'dx':
    fn = lambda p, bs, x, y: jax.grad(lambda x: loss(jax.lax.stop_gradient(p), bs, x, y)[0])(x)
elif WHAT == 'fwd':
    fn = lambda p, bs, x, y: loss(p, bs, x, y)[0]
else:
    fn = lambda p, bs, x, y: jax.grad(loss, has_aux=True)(p, bs, x, y)
jf = jax.jit(fn); args = (v['params'], v['batch_stats'], x, y)
hlo = jf.lower(*args).compile().as_text()
for _ in range(3): jax.block_until_ready(jf(*args))
d = '/tmp/cnnzoo_trace'; shutil.rmtree(d, ignore_errors=True)
NR = 5
with jax.profiler.trace(d):
    for _ in range(NR): jax.block_until_ready(jf(*args))
calls = dict(re.findall(r'%(\S+) = \S+ fusion\([^\n]*?calls=%(\S+?)[,\s]', hlo))
comps = {m.group(1): m.group(2) for m in re.finditer(r'^(?:ENTRY )?%(\S+) \(.*?\{\n(.*?)\n\}', hlo, re.S|re.M)}
lines = {m.group(1): m.group(0) for m in re.finditer(r'^\s*%(\S+) = [^\n]*', hlo, re.M)}
pd = ProfileData.from_file(glob.glob(d + '/**/*.xplane.pb', recursive=True)[0])
by = collections.Counter(); wall = 0
for plane in pd.planes:
    for line in plane.lines:
        for e in line.events:
            if e.name in lines: by[e.name] += e.duration_ns
            if e.name.startswith('$api.py') and 'block_until_ready' in e.name: wall += e.duration_ns
print('load', open('/proc/loadavg').read().strip(), 'RELU', os.environ.get('RELU', 'cnnzoo'), 'CONV', os.environ.get('CONV', 'cnnzoo'), 'WHAT', WHAT, 'MODEL', MODEL)
print('wall per iter', wall / 1e6 / NR, 'thread-time in thunks', sum(by.values()) / 1e6 / NR)
def kind(n):
    body = comps.get(calls.get(n, ''), lines[n])
    m = re.search(r'convolution\(.*?window=\{([^}]*)\}', body)
    if m: return 'conv ' + m.group(1)[:40] + ' -> ' + lines[n].split('=')[1].split()[0][:24]
    ops = collections.Counter(re.findall(r'= \S+ ([a-z-]+)\(', body))
    for k in ('parameter', 'constant', 'broadcast', 'bitcast'): ops.pop(k, None)
    return 'fusion ' + ','.join(f'{o}{c}' for o, c in ops.most_common(5)) + ' -> ' + lines[n].split('=')[1].split()[0][:24]
for n, tt in by.most_common(30): print(f'{tt/1e6/NR:7.2f} ms {n:32s} {kind(n)}')
