"""How long a stop takes, and what bounding the steps in flight costs in speed: two source trees
side by side, interleaved, through ``python -m cnnzoo train``.

For each round and each tree: the README's first command (ResNet-20 on CIFAR-10, the default
experiment) starts in a fresh workdir with progress lines every ``--log-every`` steps; when the
line of step ``--signal-step`` arrives, the script waits ``--delay`` seconds (as the issue's trial
did) and sends SIGTERM. It records:

- the stop latency: seconds from the signal to the process's exit;
- the step the run stopped at (its checkpoint) against the last progress line printed before the
  signal: how far the loop had dispatched ahead of what the host had seen;
- the throughput: steps per second between the progress lines of steps ``--log-every`` and
  ``--signal-step`` (arrival times of the lines; the compilation is before the first of them).

    python benchmarks/stop_latency.py --before /work/base --after . --archive /tmp/cifar-10-python.tar.gz \\
        --rounds 2 --out results/cpu/faults/stop_latency.json

``--before`` is a checkout of an older commit (``git worktree add ../base e622304``); both trees
run with this interpreter, each from its own directory so that its own ``cnnzoo`` is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


def loadavg() -> str:
    """The first three fields of /proc/loadavg ('' where there is none)."""
    try:
        with open('/proc/loadavg') as f:
            return ' '.join(f.read().split()[:3])
    except OSError:
        return ''


def one_stop(tree: str, archive: str, *, signal_step: int, log_every: int, delay: float, num_steps: int) -> dict:
    """One run of ``tree`` stopped by SIGTERM ``delay`` s after the progress line of ``signal_step``."""
    workdir = tempfile.mkdtemp(prefix='stop_latency_')
    cmd = [sys.executable, '-m', 'cnnzoo', 'train', '--config', 'experiments/resnet20_cifar10.py',
           '--workdir', workdir, f'--config.data.archive={archive}',
           f'--config.data.data_dir={os.path.join(workdir, "data")}',
           f'--config.training.num_steps={num_steps}', f'--config.training.log_every_steps={log_every}',
           '--config.training.progress_bar=False']
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    proc = subprocess.Popen(cmd, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    arrivals, lines, sent = {}, [], {}
    first_line_step = None

    def stop_later():
        time.sleep(delay)
        sent['time'] = time.monotonic()
        sent['last_seen'] = max(arrivals)
        proc.send_signal(signal.SIGTERM)

    for line in proc.stdout:
        lines.append(line)
        m = re.match(r'step (\d+)/', line)
        if m:
            step = int(m.group(1))
            arrivals[step] = time.monotonic()
            first_line_step = first_line_step or step
            if step == signal_step:
                threading.Thread(target=stop_later, daemon=True).start()
    code = proc.wait()
    exited = time.monotonic()
    stopped = re.search(r'stopped by SIG\w+ at step (\d+)', ''.join(lines))
    checkpoints = [int(n) for n in os.listdir(os.path.join(workdir, 'checkpoints')) if n.isdigit()] \
        if os.path.isdir(os.path.join(workdir, 'checkpoints')) else []
    shutil.rmtree(workdir, ignore_errors=True)
    if 'time' not in sent:
        raise SystemExit(f'{tree}: the run ended (exit {code}) before step {signal_step}:\n' + ''.join(lines[-20:]))
    return {'exit_status': code, 'stop_latency_s': exited - sent['time'],
            'last_progress_line_before_signal': sent['last_seen'],
            'stopped_at_step': int(stopped.group(1)) if stopped else None,
            'latest_checkpoint': max(checkpoints) if checkpoints else None,
            'steps_per_s': (signal_step - log_every) / (arrivals[signal_step] - arrivals[log_every]),
            'tail': ''.join(lines[-3:])}


def main(argv=None) -> None:
    """Runs the interleaved rounds and writes the JSON report."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--before', required=True, help='source tree of the older commit')
    p.add_argument('--after', default='.', help='source tree of the newer commit (default: .)')
    p.add_argument('--archive', required=True, help='the CIFAR-10 python archive (cifar-10-python.tar.gz)')
    p.add_argument('--rounds', type=int, default=2)
    p.add_argument('--signal-step', type=int, default=50)
    p.add_argument('--log-every', type=int, default=10)
    p.add_argument('--delay', type=float, default=3.0, help='seconds between the progress line and SIGTERM')
    p.add_argument('--num-steps', type=int, default=2000, help='the run\'s length (never reached)')
    p.add_argument('--out', required=True)
    args = p.parse_args(argv)
    trees = {'before': os.path.abspath(args.before), 'after': os.path.abspath(args.after)}
    report = {'command': ' '.join([sys.executable, *sys.argv]), 'loadavg_before': loadavg(), 'cpus': os.cpu_count(),
              'trees': {name: subprocess.run(['git', '-C', tree, 'rev-parse', '--short', 'HEAD'], capture_output=True,
                                             text=True, check=False).stdout.strip() for name, tree in trees.items()},
              'rounds': []}
    for r in range(args.rounds):
        for name, tree in trees.items():
            result = one_stop(tree, args.archive, signal_step=args.signal_step, log_every=args.log_every,
                              delay=args.delay, num_steps=args.num_steps)
            result.update(tree=name, round=r, loadavg=loadavg())
            print(f'round {r} {name}: exit {result["exit_status"]}, stop took {result["stop_latency_s"]:.1f} s, '
                  f'last line before the signal: step {result["last_progress_line_before_signal"]}, stopped at '
                  f'step {result["stopped_at_step"]} (checkpoint {result["latest_checkpoint"]}), '
                  f'{result["steps_per_s"]:.2f} steps/s; load {result["loadavg"]}', flush=True)
            report['rounds'].append(result)
    report['loadavg_after'] = loadavg()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    print(f'written: {args.out}')


if __name__ == '__main__':
    main()
