"""Where a CPU training step's time goes, by op class (issue 31.3): XLA's per-thunk trace of the
compiled train step of compare-pytorch's jax-fp32 variant (cnnzoo.bench.speed.JaxVariant), each
thunk classed from the compiled HLO: convolution forward, input gradient, weight gradient (XLA's
convolution or cnnzoo's chunked matrix products), BatchNorm, element-wise and layout (fusions,
copies, transposes), the optimizer, other.

    XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true python benchmarks/step_profile.py --models resnet20,resnet18 \\
        --out results/cpu/profile/step_profile

The flag makes XLA's CPU runtime record each thunk; it must be set before JAX starts (the script
sets it when XLA_FLAGS is empty). Thunk times are summed over ``--steps`` steps and divided by them;
their total is below the step's wall time by what runs outside thunks (dispatch, waits between them).
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time

if not os.environ.get('XLA_FLAGS'):
    os.environ['XLA_FLAGS'] = '--xla_cpu_enable_xprof_traceme=true'

CLASSES = ('conv forward', 'conv input grad', 'conv weight grad', 'batchnorm', 'element-wise (model)',
           'optimizer + augmentation', 'other')
INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = (\w+)\[([\d,]*)\]\S* ([\w-]+)\(')
CONTAINERS = ('while', 'conditional', 'call')  # their thunks hold the others' time


def op_class(op_name: str, shape: tuple[int, ...], batch: int) -> str:
    """The class of one instruction, from its metadata op_name (the module path and whether it is in
    the gradient, ``transpose(...)``) and its output shape (an input gradient keeps the batch axis)."""
    if 'jvp(' not in op_name and 'transpose(' not in op_name:
        return 'optimizer + augmentation'
    conv = re.search(r'(^|/)\w*conv\d*/', op_name)
    if conv:
        if 'transpose(' not in op_name:
            return 'conv forward'
        if '/while/' in op_name or not shape or shape[0] != batch:
            return 'conv weight grad'
        return 'conv input grad'
    if re.search(r'(^|/)\w*bn\d*/', op_name):
        return 'batchnorm'
    return 'element-wise (model)'


def hlo_classes(text: str, batch: int) -> dict[str, str]:
    """Instruction name -> class, for every instruction of the compiled HLO but the containers."""
    classes = {}
    for line in text.splitlines():
        m = INSTRUCTION.match(line)
        if not m or m.group(4) in CONTAINERS:
            continue
        name = re.search(r'op_name="([^"]*)"', line)
        shape = tuple(int(d) for d in m.group(3).split(',') if d)
        classes[m.group(1)] = op_class(name.group(1) if name else '', shape, batch)
    return classes


def profile(model_name: str, steps: int, batch_size: int) -> dict:
    """Thunk milliseconds per step by class, and the step's wall time, for one model."""
    import jax
    from jax.profiler import ProfileData

    from cnnzoo.bench.speed import JaxVariant
    from cnnzoo.bench.variants import synthetic_data

    images, labels = synthetic_data(4 * batch_size)
    variant = JaxVariant(model_name, 'jax-fp32', batch_size=batch_size, images=images, labels=labels, warmup=2)
    classes = hlo_classes(variant._train.as_text() or '', batch_size)
    trace_dir = tempfile.mkdtemp(prefix='cnnzoo-profile-')
    walls = []
    with jax.profiler.trace(trace_dir):
        for _ in range(steps):
            t0 = time.perf_counter()
            variant.train_step()
            walls.append(time.perf_counter() - t0)
    data = ProfileData.from_file(glob.glob(f'{trace_dir}/**/*.xplane.pb', recursive=True)[0])
    ms: dict[str, float] = collections.defaultdict(float)
    top: dict[str, float] = collections.defaultdict(float)
    for plane in data.planes:
        for line in plane.lines:
            for event in line.events:
                if event.name in classes:
                    ms[classes[event.name]] += event.duration_ns / 1e6 / steps
                    top[event.name] += event.duration_ns / 1e6 / steps
    heaviest = sorted(top.items(), key=lambda kv: -kv[1])[:15]
    return {'model': model_name, 'steps': steps, 'wall_ms_per_step': sorted(walls)[len(walls) // 2] * 1e3,
            'thunk_ms_per_step': {c: ms.get(c, 0.0) for c in CLASSES},
            'heaviest': [{'instruction': n, 'class': classes[n], 'ms': t} for n, t in heaviest]}


def markdown(rows: list[dict], meta: dict) -> str:
    head = (f'Load {meta["loadavg_before"]} -> {meta["loadavg_after"]}; {meta["cpu"]}; jax {meta["versions"]["jax"]}; '
            f'XLA_FLAGS={meta["XLA_FLAGS"]!r}. Milliseconds of thunk time per step (both threads summed) and '
            'share of the thunk total; wall: median step.\n\n'
            '| model | wall ms | thunk ms | ' + ' | '.join(CLASSES) + ' |\n|---|---|---|' + '---|' * len(CLASSES) + '\n')
    lines = []
    for r in rows:
        total = sum(r['thunk_ms_per_step'].values())
        cells = ' | '.join(f'{r["thunk_ms_per_step"][c]:.0f} ({r["thunk_ms_per_step"][c] / total:.0%})' for c in CLASSES)
        lines.append(f'| {r["model"]} | {r["wall_ms_per_step"]:.0f} | {total:.0f} | {cells} |')
    return head + '\n'.join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', default='resnet20,resnet18')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    from cnnzoo.bench.environment import environment, loadavg, write_json_and_markdown

    meta = environment(steps=args.steps, batch_size=args.batch_size)
    rows = []
    for model_name in args.models.split(','):
        row = profile(model_name, args.steps, args.batch_size)
        rows.append(row)
        print(row, flush=True)
    meta['loadavg_after'] = loadavg()
    table = markdown(rows, meta)
    print(table)
    write_json_and_markdown(args.out, {'meta': meta, 'rows': rows}, table)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
