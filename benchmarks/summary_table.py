"""The CPU summary table of BENCHMARKS.md, from the quiet comparison runs' JSON files.

    python benchmarks/summary_table.py results/cpu/compare_pytorch_{resnet20,resnet18,vgg16_bn,googlenet,alexnet}_quiet.json

One row per model: training images/s of every variant (median), then JAX float32 against PyTorch
eager float32, and the best JAX variant against the best PyTorch variant, all from the same run.
"""
import json
import sys

VARIANTS = ('jax-fp32', 'jax-bf16', 'torch-eager-fp32', 'torch-eager-bf16-cl', 'torch-compile-fp32',
            'torch-compile-bf16-cl')

print('| model | ' + ' | '.join(VARIANTS) + ' | JAX fp32 / torch eager fp32 | best JAX / best PyTorch '
      '| load start → end | run |')
print('|---|' + '---|' * (len(VARIANTS) + 4))
for path in sys.argv[1:]:
    with open(path) as f:
        report = json.load(f)
    rates = {r['variant']: r['train_images_per_sec'] for r in report['results'] if not r['error']}
    model = report['results'][0]['model']
    best_jax = max(v for k, v in rates.items() if k.startswith('jax'))
    best_torch_name = max((k for k in rates if k.startswith('torch')), key=rates.get)
    cells = ' | '.join(('–' if v not in rates else f'{rates[v]:.0f}' if rates[v] >= 20 else f'{rates[v]:.1f}')
                      for v in VARIANTS)
    meta = report['meta']
    print(f'| {model} | {cells} | {rates["jax-fp32"] / rates["torch-eager-fp32"]:.2f}x '
          f'| {best_jax / rates[best_torch_name]:.2f}x ({best_torch_name}) '
          f'| {meta["loadavg_before"].split()[0]} → {meta["loadavg_after"].split()[0]} '
          f'| `{path.rsplit("/", 1)[-1][:-5]}` |')
