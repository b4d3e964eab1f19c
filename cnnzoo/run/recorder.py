"""What a run records of its R >= 1 replicas: metrics, best checkpoints and the progress lines.

A one-seed run is the case R = 1, written to the workdir itself. With ``training.num_seeds=K``
replica k is the run with seed ``seed + k``, and writes ``<workdir>/seed<seed + k>/`` as that
one-seed run would: its ``config.json`` (with its own seed and ``num_seeds=1``), ``metrics.jsonl``,
TensorBoard events and best checkpoint; every reader of a one-seed run reads it unchanged.

Training records are windows: every ``log_every_steps`` steps, the mean loss and accuracy of each
replica over the steps since the last record, the learning rate of the last one, and the images/s.
The window in progress is part of each checkpoint (:meth:`Recorder.window_state`), so a run stopped
inside a window and resumed writes the record the uninterrupted run writes.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Self

import numpy as np

from cnnzoo.run.checkpoints import Checkpoints
from cnnzoo.run.distributed import is_primary
from cnnzoo.run.progress import format_duration
from cnnzoo.run.workdir import MetricsLog, seed_dir, write_or_check_config


class Recorder:
    """The records of one run (a context manager: its files are closed at the end).

    ``ckpts`` saves a one-seed run's best checkpoint too; several replicas get one ``best/`` each in
    their own directories. Only process 0 writes; the others keep the same records in memory.
    """

    def __init__(self, config, workdir: str, setup, *, start_step: int, ckpts: Checkpoints, progress,
                 window: dict | None = None):
        self.config, self.workdir, self.progress = config, workdir, progress
        self.seeds, self.spe = setup.seeds, setup.steps_per_epoch
        self.split = setup.dataset.eval_split
        self.dirs = [workdir] if len(self.seeds) == 1 else [seed_dir(workdir, s) for s in self.seeds]
        self.logs, self.bests, self._own = [], [], []
        for seed, directory in zip(self.seeds, self.dirs, strict=True):
            if directory != workdir:  # a replica's own one-seed workdir
                if is_primary():
                    os.makedirs(directory, exist_ok=True)
                    write_or_check_config(directory, one_seed_config(config, seed))
                self._own.append(Checkpoints(directory, keep=1))
                self.bests.append(self._own[-1])
            else:
                self.bests.append(ckpts)
            self.logs.append(MetricsLog(directory, resume_step=start_step, write=is_primary()))
        self.best_accuracy = [log.best_eval_accuracy() for log in self.logs]
        self.last_eval: list[dict[str, Any] | None] = [log.eval_at(start_step) for log in self.logs] if start_step else [None] * len(self.seeds)
        self.window: dict[str, list] = {'loss': [], 'accuracy': []}  # per step: a list of R values each
        if window and 'window' in window:  # the window a checkpoint kept (none before windows were kept)
            self.window = copy.deepcopy(window['window'])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        for best in self.bests:
            best.wait()
        for log in self.logs:
            log.close()
        for best in self._own:
            best.close()

    @property
    def several(self) -> bool:
        """Whether the run trains several seeds."""
        return len(self.seeds) > 1

    def _seeds_text(self) -> str:
        return f' (seeds {self.seeds[0]}..{self.seeds[-1]})' if self.several else ''

    # --- training windows

    def add(self, host_metrics: list[dict]) -> None:
        """Adds the metrics of the steps run since the last call (host values, one per replica each)."""
        for m in host_metrics:
            self.window['loss'].append([float(x) for x in np.atleast_1d(m['loss'])])
            self.window['accuracy'].append([float(x) for x in np.atleast_1d(m['accuracy'])])
        if host_metrics:
            self.window['learning_rate'] = [float(x) for x in np.atleast_1d(host_metrics[-1]['learning_rate'])]

    def window_state(self) -> dict:
        """The window in progress, for the checkpoint."""
        return {'window': copy.deepcopy(self.window)}

    def log(self, step: int, images_per_sec: float | None, eta_seconds: float | None) -> None:
        """Ends the window at ``step``: one train record per replica, and a progress line."""
        if not self.window['loss']:
            return
        losses = np.asarray(self.window['loss'], np.float32)  # (steps, R), as the step computed them
        accuracies = np.asarray(self.window['accuracy'], np.float32)
        records = [{'step': step, 'split': 'train', 'epoch': step / self.spe,
                    'loss': float(np.mean(losses[:, k])), 'accuracy': float(np.mean(accuracies[:, k])),
                    'learning_rate': self.window['learning_rate'][k], 'images_per_sec': images_per_sec}
                   for k in range(len(self.seeds))]
        for record, log in zip(records, self.logs, strict=True):
            log.write(record)
        self.window = {'loss': [], 'accuracy': []}
        self.progress.update(step, epoch=step / self.spe, loss=float(np.mean([r['loss'] for r in records])),
                             accuracy=float(np.mean([r['accuracy'] for r in records])),
                             learning_rate=records[0]['learning_rate'],
                             images_per_sec=images_per_sec and images_per_sec * len(self.seeds),
                             eta_seconds=eta_seconds)

    # --- evaluations

    def needs_eval(self, step: int) -> bool:
        """Whether an evaluation of ``step`` is missing from a replica's records (a stop cut it short)."""
        return any(log.eval_at(step) is None for log in self.logs)

    def evaluation(self, step: int, results: list[dict], state) -> None:
        """Records each replica's evaluation at ``step`` and keeps its best checkpoint."""
        from cnnzoo.training import replica

        one_model = (lambda k: replica(state, k)) if self.several else (lambda k: state)
        self.last_eval = []
        for k, (result, log) in enumerate(zip(results, self.logs, strict=True)):
            record = {'step': step, 'split': self.split, 'epoch': step / self.spe,
                      'loss': result['loss'], 'accuracy': result['accuracy']}
            if log.eval_at(step) is None:  # a resumed run may have it already
                log.write(record)
            if record['accuracy'] > self.best_accuracy[k]:
                self.best_accuracy[k] = record['accuracy']
                self.bests[k].save_best(one_model(k), record['accuracy'])
            self.last_eval.append(record)
        accuracies = ' '.join(f'{r["accuracy"]:.4f}' for r in results)
        self.progress.message(f'eval step {step} ({self.split}): '
                              + (f'loss {results[0]["loss"]:.4f} ' if not self.several else '')
                              + f'accuracy {accuracies}{self._seeds_text()} on {results[0]["count"]} images')

    # --- the end

    def summary(self, *, step: int, total: int, stopped_by: str | None, wall: float,
                train_images_per_sec: float | None, state) -> dict:
        """What ``train_and_evaluate`` returns: the first replica's figures at the top, every
        replica's under ``'replicas'``."""
        best = [a if a >= 0 else None for a in self.best_accuracy]
        finals = self.last_eval
        replicas = [{'seed': seed, 'directory': directory, 'final': final, 'best_accuracy': b}
                    for seed, directory, final, b in zip(self.seeds, self.dirs, finals, best, strict=True)]
        return {'step': step, 'total_steps': total, 'stopped_by': stopped_by, 'wall_seconds': wall,
                'train_images_per_sec': train_images_per_sec, 'best_accuracy': best[0], 'final': finals[0],
                'evals': [r for r in self.logs[0].records if r.get('split') != 'train'], 'state': state,
                'replicas': replicas}

    def done(self, summary: dict, eval_split: str) -> None:
        """The last line of a run that finished."""
        accuracies = ' '.join(f'{r["accuracy"]:.4f}' if r else '–' for r in self.last_eval)
        bests = ' '.join(f'{b:.4f}' if b >= 0 else '–' for b in self.best_accuracy)
        rate = summary['train_images_per_sec']
        self.progress.message(f'done: step {summary["step"]}, {eval_split} accuracy {accuracies} (best {bests})'
                              + (f' for seeds {self.seeds[0]}..{self.seeds[-1]}' if self.several else '')
                              + f', wall {format_duration(summary["wall_seconds"])}'
                              + (f', {rate:.0f} train img/s' if rate else ''))


def one_seed_config(config, seed: int):
    """The config of the one-seed run that replica ``seed`` is (what its ``config.json`` says)."""
    one = copy.deepcopy(config)
    one.seed = seed
    one.training.num_seeds = 1
    return one
