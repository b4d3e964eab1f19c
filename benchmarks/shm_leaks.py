"""What a streamed run leaves in /dev/shm, for each way it can end.

    python benchmarks/shm_leaks.py [--workdir DIR] [--workers 2]

Makes a tiny image folder, then runs ``scripts/train.py`` on it (grain workers, ResNet-8 at 32x32,
batch 4) once per ending: finished, a corrupt image, SIGTERM, SIGKILL of the run's process, SIGKILL
of its whole process group (what a scheduler does), SIGKILL of one data worker, and a run resumed
after a group kill. For each it prints the exit status, the stderr lines, and the shared-memory
segments (``psm_*`` or cnnzoo's ``cnnzoo*``) and semaphores (``sem.*``) that appeared in /dev/shm
since the run started and are still there when it has ended. Other processes on the machine may
create entries too: only entries that were not there before each run are counted, and each is
printed, so a stray one can be told apart.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'scripts', 'train.py')
EXPERIMENT = os.path.join(ROOT, 'experiments', 'resnet20_cifar10.py')
SHM = '/dev/shm'


def make_folder(root: str, *, train: int = 8, val: int = 3) -> str:
    rng = np.random.default_rng(0)
    for split, n in (('train', train), ('val', val)):
        for c, name in enumerate(('cat', 'dog', 'fox')):
            os.makedirs(os.path.join(root, split, name), exist_ok=True)
            for i in range(n):
                pixels = np.clip(rng.integers(0, 120, (48, 48, 3)) + 60 * c, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(os.path.join(root, split, name, f'{i:03d}.jpg'))
    return root


def loadavg() -> str:
    with open('/proc/loadavg') as f:
        return f.read().strip()


def listing() -> set[str]:
    return set(os.listdir(SHM))


def children(pid: int) -> list[tuple[int, str]]:
    """``(pid, command line)`` of the processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            with open(f'/proc/{entry}/cmdline', 'rb') as f:
                cmdline = f.read().replace(b'\0', b' ').decode(errors='replace')
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append((int(entry), cmdline))
    return found


def data_workers(pid: int) -> list[int]:
    return [p for p, cmd in children(pid) if 'spawn_main' in cmd and 'resource_tracker' not in cmd]


def run(workdir: str, folder: str, workers: int, *, ending: str, steps: int = 8, at_step: int = 3):
    """Runs one training and ends it as ``ending`` says; returns (status, stderr lines, seconds)."""
    flags = {'data.source': 'folder', 'data.folder': folder, 'data.augment': 'imagenet', 'data.image_size': '32',
             'data.workers': str(workers), 'model.stage_sizes': '(1, 1, 1)', 'training.batch_size': '4',
             'training.eval_batch_size': '4', 'training.log_every_steps': '1', 'training.progress_bar': 'False',
             'training.checkpoint_every_steps': '2', 'training.num_steps': str(steps)}
    cmd = [sys.executable, TRAIN, '--config', EXPERIMENT, '--workdir', workdir,
           *(f'--config.{k}={v}' for k, v in flags.items())]
    start = time.time()
    err_path = os.path.join(os.path.dirname(workdir), 'stderr.txt')
    with open(err_path, 'w') as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
        for line in proc.stdout:
            if ending != 'finished' and line.startswith(f'step {at_step}/'):
                if ending == 'SIGTERM':
                    proc.send_signal(signal.SIGTERM)
                elif ending == 'SIGKILL parent':
                    proc.kill()
                elif ending == 'SIGKILL group':
                    os.killpg(proc.pid, signal.SIGKILL)
                elif ending == 'SIGKILL worker':
                    workers = data_workers(proc.pid)
                    with open(f'/proc/{workers[0]}/comm') as f:
                        name = f.read().strip()
                    print(f'   killing worker {workers[0]} ({name}) of {workers}', flush=True)
                    os.kill(workers[0], signal.SIGKILL)
                ending = 'finished'  # once
        status = proc.wait(timeout=600)
    if ending == 'finished':
        time.sleep(2)  # orphaned workers notice their parent is gone within half a second
    with open(err_path) as f:
        lines = [line.rstrip() for line in f if line.strip()]
    return status, lines, time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--workdir', default=None)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--only', default='', help='comma-separated names of the endings to run (all by default)')
    args = parser.parse_args()
    base = args.workdir or tempfile.mkdtemp(prefix='shm_leaks_')
    folder = make_folder(os.path.join(base, 'folder'))
    bad_folder = make_folder(os.path.join(base, 'bad_folder'))
    bad = os.path.join(bad_folder, 'train', 'dog', '002.jpg')
    with open(bad, 'rb') as f:
        head = f.read(40)
    with open(bad, 'wb') as f:
        f.write(head)  # a truncated JPEG
    print(f'python {sys.version.split()[0]}, /dev/shm held {len(listing())} entries at the start; '
          f'loadavg {loadavg()}')
    cases = [('finished', folder, 'finished'), ('corrupt image', bad_folder, 'finished'),
             ('SIGTERM', folder, 'SIGTERM'), ('SIGKILL parent', folder, 'SIGKILL parent'),
             ('SIGKILL group', folder, 'SIGKILL group'), ('resume after group kill', None, 'finished'),
             ('SIGKILL worker', folder, 'SIGKILL worker')]
    if args.only:
        cases = [case for case in cases if case[0] in args.only.split(',')]
    group_workdir = None
    for name, data, ending in cases:
        workdir = os.path.join(base, name.replace(' ', '_'), 'run')
        if name == 'resume after group kill':
            workdir, data = group_workdir, folder
        os.makedirs(os.path.dirname(workdir), exist_ok=True)
        if name == 'SIGKILL group':
            group_workdir = workdir
        before = listing()
        # enough steps that the run still needs the killed worker's batches after those buffered ahead
        steps = 40 if ending == 'SIGKILL worker' else 8
        status, lines, seconds = run(workdir, data, args.workers, ending=ending, steps=steps)
        new = sorted(listing() - before)
        gone = sorted(before - listing())
        shm = [e for e in new if not e.startswith('sem.')]
        sems = [e for e in new if e.startswith('sem.')]
        print(f'\n== {name}: exit status {status}, {seconds:.0f} s; new in /dev/shm: {len(shm)} segments, '
              f'{len(sems)} semaphores; removed {len(gone)} older entries')
        for line in lines[-6:]:
            print(f'   stderr: {line[:200]}')
        if len(lines) > 6:
            print(f'   ({len(lines)} stderr lines in all)')
        for entry in new[:6]:
            print(f'   left: {entry}')
    print(f'\n/dev/shm holds {len(listing())} entries at the end; loadavg {loadavg()}')


if __name__ == '__main__':
    main()
