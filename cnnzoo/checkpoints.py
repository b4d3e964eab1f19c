"""orbax checkpoints of a run: the last k under ``checkpoints/``, the best by eval accuracy under ``best/``.

A checkpoint holds every array of the :class:`~cnnzoo.training.TrainState` (step, params,
batch_stats, optimizer state). Nothing else is needed to resume exactly: data order and random
numbers are derived from ``(seed, epoch)`` and ``(seed, step)``. orbax writes into a temporary
directory and renames it when complete, so a run killed during a save leaves the previous
checkpoint intact and the half-written one is ignored.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    def __init__(self, workdir: str, *, keep: int):
        workdir = os.path.abspath(workdir)
        self.last = ocp.CheckpointManager(
            os.path.join(workdir, 'checkpoints'),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 cleanup_tmp_directories=True))
        self.best = ocp.CheckpointManager(
            os.path.join(workdir, 'best'),
            options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True, best_fn=_accuracy,
                                                 best_mode='max', cleanup_tmp_directories=True))

    def latest_step(self) -> int | None:
        return self.last.latest_step()

    def save(self, state, *, force: bool = False) -> None:
        step = int(state.step)
        if step in self.last.all_steps():
            return
        self.last.save(step, args=ocp.args.StandardSave(state.checkpoint_items()), force=force)

    def save_best(self, state, accuracy: float) -> None:
        step = int(state.step)
        if step in self.best.all_steps():
            return
        self.best.save(step, args=ocp.args.StandardSave(state.checkpoint_items()),
                       metrics={'accuracy': float(accuracy)}, force=True)

    def restore(self, state, which: str | int = 'latest'):
        """``state`` with arrays from a checkpoint: ``'latest'``, ``'best'`` or a step number.

        ``state`` is a freshly initialised one: it gives the tree structure, shapes and shardings.
        Returns ``None`` when there is no such checkpoint.
        """
        manager = self.best if which == 'best' else self.last
        step = {'latest': manager.latest_step, 'best': manager.best_step}.get(which, lambda: which)()
        if step is None or step not in manager.all_steps():
            return None
        target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state.checkpoint_items())
        items = manager.restore(step, args=ocp.args.StandardRestore(target))
        return state.replace(**items)

    def wait(self) -> None:
        self.last.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.last.close()
        self.best.close()


def _accuracy(metrics) -> float:
    return metrics['accuracy']
