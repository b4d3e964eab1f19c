"""How long the survivor of a two-process run takes to stop after the other is SIGKILLed, and what it prints.

    python benchmarks/lost_process.py [--freeze] VICTIM STEP WORKDIR ARCHIVE [train flags, e.g. --heartbeat-timeout 5]

Two processes of 2 simulated CPU devices on 127.0.0.1 train the tests' tiny ResNet-8 on ARCHIVE (a
cifar-10-python.tar.gz); process VICTIM is SIGKILLed once process 0 logs STEP. With ``--freeze`` it
is SIGSTOPped instead, its supervising parent and its training child alike (a machine that stops
answering without dying), and SIGKILLed once the other has ended.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tests'))
from tiny_run import TRAIN, free_port, process_command, tiny_overrides

freeze = sys.argv[1:2] == ['--freeze']
if freeze:
    del sys.argv[1]
if len(sys.argv) < 5 or sys.argv[1] not in ('0', '1') or not sys.argv[2].isdigit():
    sys.exit('usage: python benchmarks/lost_process.py [--freeze] VICTIM(0|1) STEP WORKDIR ARCHIVE [train flags]')
victim, at, workdir, archive = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
port, env = free_port(), {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
overrides = tiny_overrides(archive, workdir + '.data', **{'training.checkpoint_every_steps': '5'})
procs = [subprocess.Popen(process_command([TRAIN], workdir, overrides, port, i, *sys.argv[5:]), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
for line in procs[0].stdout:
    if line.startswith(f'step {at}/'):
        print(f'process 0 logged: {line.strip()}; {"SIGSTOP" if freeze else "SIGKILL"} to process {victim}')
        if freeze:
            pid = procs[victim].pid
            with open(f'/proc/{pid}/task/{pid}/children') as f:
                frozen = [pid, *map(int, f.read().split())]
            for p in frozen:
                os.kill(p, signal.SIGSTOP)
        else:
            procs[victim].kill()
        killed = time.monotonic()
        break
survivor = procs[1 - victim]
out, err = survivor.communicate()
print(f'process {1 - victim} exited with status {survivor.returncode}, {time.monotonic() - killed:.1f} s after the {"stop" if freeze else "kill"}')
print(f'its stderr ({len(err.splitlines())} line(s)):\n{err}', end='')
print('complete checkpoints:', sorted(n for n in os.listdir(os.path.join(workdir, 'checkpoints')) if n.isdigit()))
if freeze:
    for p in frozen:
        os.kill(p, signal.SIGKILL)
