import sys, os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'tests'))
import numpy as np, torch
from conftest import write_cifar10_python_archive
from test_compare_accuracy import tiny_config
from cnnzoo.torch.recipe import TorchRun
from cnnzoo.run.setup import build
from cnnzoo.bench.accuracy import relative_difference
kind = sys.argv[1]
path = f'/tmp/cnnzoo-probe/tiny_{kind}.tar.gz'
if not os.path.exists(path):
    write_cifar10_python_archive(path, real=kind == 'real')
torch.set_num_threads(1)
config = tiny_config(path, '/tmp/cnnzoo-probe/cache_' + kind, **dict(a.split('=', 1) for a in sys.argv[2:]))
setup = build(config)
runs = [TorchRun(config, setup), TorchRun(config, setup, float64=True)]
for seed in (1, 2, 3):
    r = TorchRun(config, setup)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in r.model.parameters():
            up = torch.rand(p.shape, generator=g) < 0.5
            p.copy_(torch.where(up, torch.nextafter(p, torch.tensor(np.inf)), torch.nextafter(p, torch.tensor(-np.inf))))
    runs.append(r)
for step in range(setup.total_steps):
    for r in runs: r.step(step)
ps = [r.variables()['params'] for r in runs]
print(kind, 'f32-f64', relative_difference(ps[0], ps[1]), 'f32-nudged', [relative_difference(ps[0], p) for p in ps[2:]], 'f64-nudged', [relative_difference(p, ps[1]) for p in ps[2:]])
