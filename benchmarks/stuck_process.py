"""How long the processes of a two-process run take to stop when one of them is alive but stuck.

    python benchmarks/stuck_process.py VICTIM STEPS WORKDIR ARCHIVE [train flags, e.g. --stall-timeout 30]

Two processes of 2 simulated CPU devices on 127.0.0.1 train the tests' tiny ResNet-8 on ARCHIVE (a
cifar-10-python.tar.gz). Process VICTIM runs through tests/lossy_train.py, whose hook makes its
training's main thread sleep for good once it has dispatched STEPS steps (JAX's own threads go on
answering the distributed service's heartbeats, so no heartbeat timeout sees it). Prints when each
process exits, counted from the moment the victim said it hangs, with its status and stderr.
"""
import os
import subprocess
import sys
import threading
import time

TESTS = os.path.join(os.path.dirname(__file__), '..', 'tests')
sys.path.insert(0, TESTS)
from tiny_run import TRAIN, free_port, process_command, tiny_overrides  # noqa: E402

if len(sys.argv) < 5 or sys.argv[1] not in ('0', '1') or not sys.argv[2].isdigit():
    sys.exit('usage: python benchmarks/stuck_process.py VICTIM(0|1) STEPS WORKDIR ARCHIVE [train flags]')
victim, steps, workdir, archive = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
port, env = free_port(), {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
overrides = tiny_overrides(archive, workdir + '.data', **{'training.checkpoint_every_steps': '5'})
hang = {**env, 'CNNZOO_TEST_HANG_AFTER_STEPS': steps}
procs = [subprocess.Popen(process_command([os.path.join(TESTS, 'lossy_train.py') if i == victim else TRAIN], workdir,
                                          overrides, port, i, *sys.argv[5:]),
                          env=hang if i == victim else env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) for i in range(2)]
hung, stderr = threading.Event(), {}


def read(i):
    lines = []
    for line in procs[i].stderr:
        lines.append(line)
        if line.startswith('hanging after'):
            hung.at = time.monotonic()
            hung.set()
    stderr[i] = ''.join(lines)


readers = [threading.Thread(target=read, args=(i,)) for i in range(2)]
for reader in readers:
    reader.start()
for i, proc in enumerate(procs):
    proc.wait()
    readers[i].join()
    since = f'{time.monotonic() - hung.at:.1f} s after process {victim} hung' if hung.is_set() else 'before any hang'
    print(f'process {i} exited with status {proc.returncode}, {since}; its stderr:\n{stderr[i]}', end='')
print('complete checkpoints:', sorted(n for n in os.listdir(os.path.join(workdir, 'checkpoints')) if n.isdigit()))
