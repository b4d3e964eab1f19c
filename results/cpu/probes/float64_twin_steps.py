import sys, os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'tests'))
import numpy as np, torch
from conftest import write_cifar10_python_archive
from test_compare_accuracy import tiny_config
from cnnzoo.torch.recipe import TorchRun
from cnnzoo.run.setup import build
kind = sys.argv[1]
path = f'/tmp/cnnzoo-probe/tiny_{kind}.tar.gz'
if not os.path.exists(path):
    write_cifar10_python_archive(path, real=kind == 'real')
torch.set_num_threads(int(os.environ.get("T", 1)))
config = tiny_config(path, '/tmp/cnnzoo-probe/cache_' + kind, **dict(a.split('=', 1) for a in sys.argv[2:]))
setup = build(config)
r32, r64 = TorchRun(config, setup), TorchRun(config, setup, float64=True)
def sync(dst, src):
    with torch.no_grad():
        for d, s in zip(dst.model.state_dict().values(), src.model.state_dict().values()):
            d.copy_(s)
        dst.opt.state.clear()
        for d, s in zip(dst.model.parameters(), src.model.parameters()):
            if s in src.opt.state:
                dst.opt.state[d] = {k: (v.to(d.dtype).clone() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in src.opt.state[s].items()}
def params(r):
    return [p.detach().double().clone() for p in r.model.parameters()]
for step in range(setup.total_steps):
    sync(r64, r32)
    before = params(r32)
    r32.step(step); r64.step(step)
    a, b = params(r32), params(r64)
    num = sum(float(((x - y) ** 2).sum()) for x, y in zip(a, b)) ** .5
    den = sum(float(((y - z) ** 2).sum()) for y, z in zip(b, before)) ** .5
    leaf = max(float((x - y).norm() / max(float((y - z).norm()), 1e-30)) for x, y, z in zip(a, b, before))
    print(kind, step, f'update rel err global {num / max(den, 1e-30):.3g}  worst leaf {leaf:.3g}  update norm {den:.3g}')
