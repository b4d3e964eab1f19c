"""Issue 10's three CPU measurements, side by side in one run, through `cnnzoo train` itself:

(a) K seeds of resnet20 in one program (`training.num_seeds=K`: on a CPU each replica is the
    one-seed program, unrolled in the one jitted step; elsewhere vmapped) against K one-seed runs
    one after another;
(b) one device using both cores against two simulated devices with one core each;
(c) time to the first step of a resumed run with and without JAX's persistent compilation cache.

Every figure is read from the runs' own outputs (metrics.jsonl, the "compiled and ran the first
step" line, the process's wall time). Usage (the venv active, nothing else running):

    python benchmarks/scale.py --archive /tmp/cifar/cifar-10-python.tar.gz --out results/cpu/scale/scale

`--rows a` (or `b`, `c`, any list such as `a,c`) measures only those comparisons.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = [sys.executable, os.path.join(ROOT, 'scripts', 'train.py'), '--config',
         os.path.join(ROOT, 'experiments', 'resnet20_cifar10.py')]
ONE_THREAD = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'


def train(workdir, overrides, *, env=None, log):
    """One `cnnzoo train` process; returns (output, wall seconds)."""
    cmd = TRAIN + ['--workdir', workdir] + [f'--config.{k}={v}' for k, v in overrides.items()]
    started = time.perf_counter()
    clean = {k: v for k, v in os.environ.items() if k not in ('JAX_COMPILATION_CACHE_DIR', 'XLA_FLAGS')}
    result = subprocess.run(cmd, capture_output=True, text=True, env={**clean, **(env or {})}, check=False)
    wall = time.perf_counter() - started
    log(f'$ {" ".join(f"{k}={v!r}" for k, v in (env or {}).items())} {" ".join(cmd)}\n{result.stdout}{result.stderr}'
        f'(exit {result.returncode}, {wall:.1f} s)\n')
    if result.returncode:
        raise SystemExit(f'a run failed: see the log ({result.stderr.strip().splitlines()[-1:]})')
    return result.stdout, wall


def steady_rate(directory):
    """Median images/s of a run's train records after the first (which includes the compilation)."""
    with open(os.path.join(directory, 'metrics.jsonl')) as f:
        records = [json.loads(line) for line in f]
    rates = [r['images_per_sec'] for r in records if r['split'] == 'train' and r.get('images_per_sec')][1:]
    return statistics.median(rates)


def first_step_seconds(output):
    return float(re.search(r'compiled and ran the first step in ([\d.]+)s', output).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--archive', required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--steps', type=int, default=40)
    parser.add_argument('--seeds', type=int, default=4)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--validation-size', type=int, default=1000)
    parser.add_argument('--model-stages', default='', help='e.g. "(1, 1, 1)" for a quick trial of this script')
    parser.add_argument('--rows', default='a,b,c', help='which comparisons to run (default all: a,b,c)')
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix='cnnzoo-scale-')
    cache = os.path.join(work, 'xla_cache')
    lines = []

    def log(text):
        lines.append(text)
        print(text, flush=True)

    base = {'data.source': 'archive', 'data.archive': args.archive, 'data.data_dir': os.path.join(work, 'data'),
            'data.validation_size': args.validation_size, 'training.batch_size': args.batch_size,
            'training.num_steps': args.steps, 'training.log_every_steps': 5,
            'training.progress_bar': False, 'training.eval_every_epochs': 100.0}
    if args.model_stages:
        base['model.stage_sizes'] = args.model_stages
    cached = {'JAX_COMPILATION_CACHE_DIR': cache}
    with open('/proc/loadavg') as f:
        log(f'load before: {f.read().strip()}; {os.cpu_count()} cores; {platform.platform()}')
    train(os.path.join(work, 'warm-data'), {**base, 'training.num_steps': 1}, env=cached, log=log)  # decode once

    rows = args.rows.split(',')
    a, b, c = {}, {}, {}
    # (a) K seeds in one program against K runs one after another (sharing a compilation cache, as
    # by default: the first compiles, the others find its programs).
    if 'a' in rows:
        a = row_a(args, base, work, log)
    if 'b' in rows:
        b = row_b(base, work, cached, log)
    if 'c' in rows:
        c = row_c(args, base, work, cached, log)
    with open('/proc/loadavg') as f:
        log(f'load after: {f.read().strip()}')

    result = {'command': ' '.join(sys.argv), 'a': a, 'b': b, 'c': c}
    with open(args.out + '.json', 'w') as f:
        json.dump(result, f, indent=2)
    with open(args.out + '.log', 'w') as f:
        f.write('\n'.join(lines))
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


def row_a(args, base, work, log):
    """(a) K seeds in one program against K one-seed runs one after another."""
    _, together_wall = train(os.path.join(work, 'together'), {**base, 'training.num_seeds': args.seeds},
                             env={'JAX_COMPILATION_CACHE_DIR': os.path.join(work, 'cache-a')}, log=log)
    together = [steady_rate(os.path.join(work, 'together', f'seed{k}')) for k in range(args.seeds)]
    sequential, sequential_walls = [], []
    for k in range(args.seeds):
        directory = os.path.join(work, f'single{k}')
        _, wall = train(directory, {**base, 'seed': k},
                        env={'JAX_COMPILATION_CACHE_DIR': os.path.join(work, 'cache-sequential')}, log=log)
        sequential.append(steady_rate(directory))
        sequential_walls.append(wall)
    return {'seeds': args.seeds, 'steps': args.steps,
            'one_program_images_per_sec_per_seed': statistics.mean(together),
            'sequential_images_per_sec_per_run': statistics.mean(sequential),
            # all K seeds' images/s in the one program over one run's: >= 1 means the program
            # finishes K seeds at least as fast as K runs one after another (steps only).
            'speed_ratio': args.seeds * statistics.mean(together) / statistics.mean(sequential),
            'one_program_wall_seconds': together_wall, 'sequential_wall_seconds': sum(sequential_walls)}


def row_b(base, work, cached, log):
    """(b) one device with both cores against two devices with one core each."""
    b = {}
    # JAX_NUM_CPU_DEVICES=1 keeps the first run on one device whatever the command line would pick;
    # the third run is the command line's own layout (one device: issue 31.2's default layout
    # measured slower, results/cpu/scale/layout_chunked.log, where it was still on and took two).
    for name, env in (('1 device x 2 threads', {'JAX_NUM_CPU_DEVICES': '1'}),
                      ('2 devices x 1 thread', {'XLA_FLAGS': f'--xla_force_host_platform_device_count=2 {ONE_THREAD}'}),
                      ('command-line default', {})):
        directory = os.path.join(work, f'devices-{len(b)}')
        train(directory, base, env={**cached, **env}, log=log)
        b[name] = steady_rate(directory)
    return b


def row_c(args, base, work, cached, log):
    """(c) time to the first step of a resume, the compilation cache on and off."""
    # (c) time to first step of a resume: a run checkpointed at half its steps is rewound there (as
    # a kill right after that checkpoint leaves it) and resumed twice, from a copy each time: with
    # the cache its first run filled, and with the cache off.
    full = {**base, 'training.checkpoint_every_steps': args.steps // 2}
    cut = os.path.join(work, 'cut')
    train(cut, full, env=cached, log=log)
    shutil.rmtree(os.path.join(cut, 'checkpoints', str(args.steps)))
    c = {}
    for name, overrides, env in (('cache on', full, cached),
                                 ('cache off', {**full, 'training.compilation_cache': False}, {})):
        directory = os.path.join(work, f'resume-{len(c)}')
        shutil.copytree(cut, directory)
        out, wall = train(directory, overrides, env=env, log=log)
        assert f'resuming at step {args.steps // 2}' in out
        c[name] = {'first_step_seconds': first_step_seconds(out), 'process_wall_seconds': wall}
    return c


if __name__ == '__main__':
    main()
