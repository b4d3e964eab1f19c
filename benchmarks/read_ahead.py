"""How far ahead the streaming path reads, with grain's default ReadOptions (what cnnzoo passed
before: none) and with cnnzoo's (``cnnzoo.data.streaming.read_options``), in one command.

    python benchmarks/read_ahead.py memory --batch 32 --size 224 --workers 0
    python benchmarks/read_ahead.py throughput -- --config experiments/resnet50_imagenet.py \\
        --workers 0,1,2 --config.data.source=folder --config.data.folder=/tmp/inet_like

``memory``: a training stream of random 64x64 images cropped to ``--size`` takes one batch, then
its consumer waits 9 s; every 3 s, the resident memory of the reading processes (this one and its
grain workers) and this process's CPU time. ``throughput``: ``cnnzoo input-benchmark`` with the
arguments after ``--``. Each runs both ways, one after the other, ``--rounds`` times.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np

MODES = ('default', 'cnnzoo')


def rss_mb(pid: int) -> float:
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def family_rss_mb() -> float:
    """This process's resident memory and its children's (grain's workers)."""
    me, total = os.getpid(), rss_mb(os.getpid())
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/stat') as f:
                if int(f.read().rsplit(')', 1)[1].split()[1]) == me:
                    total += rss_mb(int(pid))
        except (OSError, ValueError, IndexError):
            pass
    return total


def use(mode: str) -> None:
    if mode == 'default':
        import grain

        from cnnzoo.data import streaming

        streaming.read_options = lambda workers: grain.ReadOptions()


def memory(mode: str, batch: int, size: int, workers: int) -> None:
    use(mode)
    from cnnzoo.data.sources import ArraySource
    from cnnzoo.data.streaming import Stream, TrainBatches

    n, classes = 4000, ('a', 'b', 'c')
    images = np.random.default_rng(0).integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)
    source = ArraySource(images, np.arange(n) % 3, classes=classes)
    stream = Stream(train=source, eval=source, num_classes=3, class_names=classes, preset='imagenet',
                    image_size=size, seed=0, workers=workers, process_index=0, process_count=1)
    print(f'{mode}: batches of {batch} {size}x{size} crops, {workers} worker(s)', flush=True)
    start = time.perf_counter()
    batches = TrainBatches(stream, batch, 0, None)
    next(batches)
    print(f'  first batch after {time.perf_counter() - start:.2f} s; resident {family_rss_mb():.0f} MB', flush=True)
    cpu = sum(os.times()[:2])
    for k in (3, 6, 9):
        time.sleep(3)
        print(f'  +{k} s waiting: resident {family_rss_mb():.0f} MB; this process used {sum(os.times()[:2]) - cpu:.1f} '
              'CPU s meanwhile', flush=True)
    start = time.perf_counter()
    for _ in range(5):
        next(batches)
    print(f'  then 5 batches in {time.perf_counter() - start:.3f} s', flush=True)
    batches.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('what', choices=('memory', 'throughput'))
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--workers', type=int, default=0)
    p.add_argument('--rounds', type=int, default=1)
    p.add_argument('--mode', choices=MODES, help=argparse.SUPPRESS)  # one side, in a process of its own
    argv = sys.argv[1:]
    cut = argv.index('--') if '--' in argv else len(argv)
    args = p.parse_args(argv[:cut])
    args.rest = argv[cut + 1:]  # throughput: the arguments of cnnzoo input-benchmark
    if args.mode:
        if args.what == 'memory':
            memory(args.mode, args.batch, args.size, args.workers)
        else:
            use(args.mode)
            from cnnzoo.cli import main as cnnzoo_main

            sys.exit(cnnzoo_main(['input-benchmark', *args.rest]))
        return
    from cnnzoo.bench.environment import loadavg

    print(f'load average {loadavg()}; {os.cpu_count()} cores', flush=True)
    for _ in range(args.rounds):
        for mode in MODES:
            cmd = [sys.executable, __file__, args.what, '--mode', mode, '--batch', str(args.batch), '--size',
                   str(args.size), '--workers', str(args.workers), *(['--', *args.rest] if args.rest else [])]
            if args.what == 'throughput':
                print(f'{mode}:', flush=True)
            subprocess.run(cmd, check=True)


if __name__ == '__main__':
    main()
