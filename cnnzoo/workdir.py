"""A run's working directory: its lock, ``config.json``, ``metrics.jsonl`` and TensorBoard events.

    workdir/
      config.json      the resolved config of the run (written once, checked on resume)
      metrics.jsonl    one JSON object per line: train records and eval records
      tb/              TensorBoard event files
      checkpoints/     the last k orbax checkpoints      (cnnzoo.checkpoints)
      best/            the best checkpoint by eval accuracy
      damaged/         checkpoints that could not be restored, moved aside (cnnzoo.checkpoints)
      config_history.jsonl  changes made with --extend, each with the step it took effect
      .lock            held (flock) while a run uses the directory
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil

from cnnzoo import config as config_lib


class RunError(RuntimeError):
    """A run cannot start or go on; the message is one line."""


# Keys that may differ between the first start of a run and a resume: they change where data is
# read from, how fast, or what is printed, not the trajectory (a streamed run resumes on the same
# batches with another number of workers: cnnzoo.data.streaming).
RESUMABLE_CHANGES = {
    'data.source', 'data.archive', 'data.data_dir', 'data.folder', 'data.manual_dir', 'data.workers',
    'training.progress_bar', 'training.log_every_steps', 'training.compilation_cache',
}


class WorkdirLock:
    """An exclusive ``flock`` on ``workdir/.lock``; the kernel drops it when the process dies."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, '.lock')
        self._fd = None

    def acquire(self) -> 'WorkdirLock':
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors='replace').strip() or 'another process'
            os.close(fd)
            raise RunError(f'{os.path.dirname(self.path)} is in use by another run (pid {holder}); '
                           'wait for it to finish or choose another --workdir') from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _flatten(d: dict, prefix: str = '') -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


# Keys that ``extend=True`` may change: the run's length.
LENGTH_KEYS = {'training.num_steps', 'training.num_epochs'}


def write_or_check_config(workdir: str, config, *, extend: bool = False, write: bool = True) -> None:
    """Writes ``config.json``; when there is a checkpoint to resume, refuses a config that would change the run.

    A start that failed before its first checkpoint (say, the data was not found) binds nothing.
    With ``extend``, the run's length (``training.num_steps`` / ``num_epochs``) may change; each
    change is appended to ``config_history.jsonl`` with the checkpoint step it takes effect at.
    ``write=False`` checks only (the other processes of a multi-process run, beside process 0).
    """
    path = os.path.join(workdir, 'config.json')
    text = config_lib.to_json(config)
    if os.path.exists(path) and has_checkpoint(workdir):
        with open(path) as f:
            saved = json.load(f)
        # Keys the schema gained since the run started count at their defaults, which is what the
        # run used before they existed.
        saved = {**_flatten(config_lib.default_config().to_dict()), **_flatten(saved)}
        current = _flatten(json.loads(text))
        changed = sorted(k for k in saved.keys() | current.keys()
                         if saved.get(k) != current.get(k) and k not in RESUMABLE_CHANGES)
        refused = [k for k in changed if not (extend and k in LENGTH_KEYS)]
        if refused:
            hint = (' (to train a run for longer, add --extend)' if set(refused) <= LENGTH_KEYS else '')
            raise RunError(f'{workdir} holds a run with a different config ({", ".join(refused)}); '
                           f'resume with the same settings or choose another --workdir{hint}')
        if changed:
            record = {'step': latest_checkpoint_step(workdir),
                      'changes': {k: [saved.get(k), current.get(k)] for k in changed}}
            if write:
                with open(os.path.join(workdir, 'config_history.jsonl'), 'a') as f:
                    f.write(json.dumps(record) + '\n')
    if write:
        _atomic_write(path, text + '\n')


def latest_checkpoint_step(workdir: str) -> int | None:
    directory = os.path.join(workdir, 'checkpoints')
    steps = [int(n) for n in os.listdir(directory) if n.isdigit()] if os.path.isdir(directory) else []
    return max(steps, default=None)


@contextlib.contextmanager
def provisional_files(workdir: str):
    """Undoes what the block created in ``workdir`` if it fails before the run's first checkpoint.

    A start that fails (a bad value, missing data, a NaN in the first steps) leaves the directory
    as it found it: the files and folders it added are removed, ``config.json`` gets its old text
    back, and a directory the start created is removed whole. Once a checkpoint exists the run is
    real and nothing is removed.
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise RunError(f'--workdir {workdir} is a file, not a directory')
    existed = os.path.isdir(workdir)
    before = set(os.listdir(workdir)) if existed else set()
    config_path = os.path.join(workdir, 'config.json')
    old_config = open(config_path).read() if os.path.isfile(config_path) else None
    os.makedirs(workdir, exist_ok=True)
    try:
        yield
    except BaseException:
        if not has_checkpoint(workdir) and not os.path.isdir(os.path.join(workdir, 'damaged')):
            if not existed:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                for name in set(os.listdir(workdir)) - before:
                    target = os.path.join(workdir, name)
                    if os.path.isdir(target) and not os.path.islink(target):
                        shutil.rmtree(target, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            os.remove(target)
                if old_config is not None and open(config_path).read() != old_config:
                    _atomic_write(config_path, old_config)
        raise


def has_checkpoint(workdir: str) -> bool:
    directory = os.path.join(workdir, 'checkpoints')
    return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def _atomic_write(path: str, text: str) -> None:
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


class MetricsLog:
    """``metrics.jsonl`` plus TensorBoard; on resume, records past the restored step are dropped.

    TensorBoard's events are rewritten from the kept records at every start, so that after any
    number of resumes they hold exactly what an uninterrupted run's hold (appending to the old
    files, with or without a purge step, leaves TensorBoard hiding or doubling points).
    """

    def __init__(self, workdir: str, *, resume_step: int, write: bool = True):
        self.path = os.path.join(workdir, 'metrics.jsonl')
        self.records = self._read_until(resume_step)
        self._file = self._tb = None
        if not write:  # another process of a multi-process run writes; this one only reads
            return
        _atomic_write(self.path, ''.join(json.dumps(r) + '\n' for r in self.records))
        self._file = open(self.path, 'a')
        from tensorboardX import SummaryWriter  # light: protobuf only, no TensorFlow

        tb_dir = os.path.join(workdir, 'tb')
        shutil.rmtree(tb_dir, ignore_errors=True)
        self._tb = SummaryWriter(tb_dir)
        for record in self.records:
            self._write_tb(record)

    def _read_until(self, step: int) -> list[dict]:
        if not os.path.exists(self.path):
            return []
        records = []
        with open(self.path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                if record.get('step', 0) <= step:
                    records.append(record)
        return records

    def write(self, record: dict) -> None:
        self.records.append(record)
        if self._file is None:
            return
        self._file.write(json.dumps(record) + '\n')
        self._file.flush()
        self._write_tb(record)

    def _write_tb(self, record: dict) -> None:
        split = record.get('split', 'train')
        for key, value in record.items():
            if key not in ('step', 'split', 'epoch') and isinstance(value, (int, float)):
                self._tb.add_scalar(f'{split}/{key}', value, record['step'])

    def eval_at(self, step: int) -> dict | None:
        """The evaluation record written at ``step``, if any."""
        return next((r for r in self.records if r.get('split') != 'train' and r.get('step') == step), None)

    def best_eval_accuracy(self) -> float:
        accs = [r['accuracy'] for r in self.records if r.get('split') != 'train' and 'accuracy' in r]
        return max(accs, default=-1.0)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._tb.close()
