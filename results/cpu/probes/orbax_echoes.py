"""What a library call (``cnnzoo.train`` in a notebook) prints on stderr around a full disk and a
damaged checkpoint, with and without ``cnnzoo.run.checkpoints.quiet_teardown_echoes`` (``before``
replaces it by a context that does nothing, as the loop and restore_run had before 3fa2b02).

    python results/cpu/probes/orbax_echoes.py ARCHIVE   (the suite's tiny archive, tests/conftest.py)

full disk: the tiny run in a user namespace on a 2.5 MB tmpfs (as tests/test_reliability.py);
damaged: a tiny run trained in the process, then another one killed at step 15 by the command line
whose newest checkpoint is truncated, resumed in the process. Each prints its stderr's line count
and how many of the lines are ``RuntimeError: Event loop is closed`` (the damaged case six times: its
echoes come or not by timing)."""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, 'tests'))


def child(case: str, mode: str, archive: str, workdir: str) -> None:
    from tiny_run import run_script, tiny_config, tiny_overrides

    from cnnzoo.errors import RunError
    from cnnzoo.run import evaluate, loop
    from cnnzoo.run.checkpoints import Checkpoints

    if mode == 'before':
        loop.quiet_teardown_echoes = evaluate.quiet_teardown_echoes = contextlib.nullcontext
    cache = tempfile.mkdtemp()
    if case == 'damaged':
        loop.train_and_evaluate(tiny_config(archive, cache), tempfile.mkdtemp())  # a notebook trained before
        run_script(workdir, tiny_overrides(archive, cache), signal_at_step=15, sig=signal.SIGKILL)
        newest = Checkpoints(workdir, keep=2).latest_step()
        data = os.path.join(workdir, 'checkpoints', str(newest), 'state', 'ocdbt.process_0', 'd')
        largest = max((os.path.join(data, n) for n in os.listdir(data)), key=os.path.getsize)
        os.truncate(largest, os.path.getsize(largest) // 2)
    try:
        loop.train_and_evaluate(tiny_config(archive, cache, **{'training.keep_checkpoints': '3'}), workdir)
    except RunError as e:
        print(f'error: {e}', file=sys.stderr)
    import time
    time.sleep(2)  # echoes that come late


def main() -> None:
    if sys.argv[1] == '--child':
        child(*sys.argv[2:])
        return
    archive = os.path.abspath(sys.argv[1])
    for case in ('full disk', 'damaged'):
        for mode in ('before', 'after'):
            for attempt in range(6 if case == 'damaged' else 1):
                base = tempfile.mkdtemp()
                disk = os.path.join(base, 'disk')
                os.mkdir(disk)
                cmd = [sys.executable, os.path.abspath(__file__), '--child', case.split()[0], mode, archive,
                       os.path.join(disk, 'run')]
                if case == 'full disk':
                    cmd = ['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c',
                           f'mount -t tmpfs -o size=2500k tmpfs {disk} || exit 99; exec "$@"', 'sh', *cmd]
                result = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
                lines = result.stderr.splitlines()
                echoes = sum(line == 'RuntimeError: Event loop is closed' for line in lines)
                errors = [line for line in lines if line.startswith(('error:', 'warning:'))]
                others = [line for line in lines if not line.startswith(('error:', 'warning:'))][:3]
                print(f'{case}, {mode} ({attempt + 1}): exit {result.returncode}, {len(lines)} lines of stderr, '
                      f'{echoes} "Event loop is closed"; its one-line messages: {errors}; the first other lines: {others}', flush=True)
                shutil.rmtree(base, ignore_errors=True)


if __name__ == '__main__':
    main()
