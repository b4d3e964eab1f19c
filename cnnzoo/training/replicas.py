"""Several models trained as one program: the replicas of a several-seed run (``training.num_seeds``).

A state that holds R > 1 replicas has every array but its step stacked on a leading axis of length
R; the step is shared. A one-seed run's state is the state of one model, with no such axis: nothing
here is applied to it. :func:`over_replicas` is the one map over the replicas, the boundary between
the code of one model (the train and eval steps) and a run of R of them; each replica's BatchNorm
statistics are its own batch's, and replica k is the model its seed's one-seed run trains.

How the map runs (:func:`in_sequence` decides):

- ``jax.vmap`` on accelerators, and wherever the replicas are spread over several devices: one
  program whose convolutions are batched over the replicas (grouped convolutions, which GPUs run at
  speed).
- one after the other on the CPU, the one-model step written out once per replica in the one
  program: XLA's CPU backend runs grouped convolutions on a slow path (4 vmapped seeds ran at 0.04x
  per seed of one run, BENCHMARKS.md), and so it runs convolutions inside a loop (``jax.lax.map``
  over the replicas measured 0.04x per seed as well; written out, 0.94x: results/cpu/scale/). The
  program, and its compilation, grow with the number of replicas.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def replica_axes(state):
    """The ``jax.vmap`` axes of a state that holds replicas: the step is shared, every other array has
    the replica axis first."""
    return state.replace(step=None, params=0, batch_stats=0, opt_state=0)


def replica_count(state) -> int:
    """How many replicas a state that holds replicas holds: the length of its leading axis."""
    return jax.tree_util.tree_leaves(state.params)[0].shape[0]


def replica(state, index: int):
    """Replica ``index`` of a state that holds replicas, as the state of one model."""
    pick = lambda tree: jax.tree_util.tree_map(lambda x: x[index], tree)  # noqa: E731
    return state.replace(params=pick(state.params), batch_stats=pick(state.batch_stats),
                         opt_state=pick(state.opt_state))


def stack_replicas(states: list):
    """States of one model each (their steps equal) stacked into one state holding them as replicas."""
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
    return stacked.replace(step=states[0].step)


def in_sequence(seed_devices: int = 1) -> bool:
    """Whether :func:`over_replicas` runs the replicas one after the other rather than batched
    (``jax.vmap``): on the CPU, unless the replicas are spread over several devices."""
    return jax.default_backend() == 'cpu' and seed_devices == 1


def over_replicas(fn: Callable, *, shared: int = 0, returns_state: bool = True, sequential: bool = False,
                  spmd_axis_name: str | None = None) -> Callable:
    """``fn(state, *args)`` of one model, mapped over the replicas a state holds.

    Every array of ``state`` but its step has a leading replica axis of length R, as has each of
    ``args`` but the last ``shared`` ones, which every replica sees whole. ``fn`` returns ``(state,
    outputs)`` (a train step), or only ``outputs`` with ``returns_state=False`` (an eval step); the
    outputs gain the replica axis and the state keeps its layout. ``sequential``: one replica after
    the other, ``fn`` written out once for each, else ``jax.vmap`` (``spmd_axis_name``: the mesh axis
    the replica axis is laid along, for the sharding constraints inside ``fn``).
    """

    def mapped(state, *args):
        split = len(args) - shared
        each, common = args[:split], args[split:]
        if not sequential:
            axes = replica_axes(state)
            in_axes = (axes, *(0 for _ in each), *(None for _ in common))
            out_axes = (axes, 0) if returns_state else 0
            return jax.vmap(fn, in_axes=in_axes, out_axes=out_axes, spmd_axis_name=spmd_axis_name)(state, *args)
        outs = [fn(replica(state, k), *(jax.tree_util.tree_map(lambda x, k=k: x[k], a) for a in each), *common)
                for k in range(replica_count(state))]
        stack = lambda trees: jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)  # noqa: E731
        if not returns_state:
            return stack(outs)
        return stack_replicas([new for new, _ in outs]), stack([outputs for _, outputs in outs])

    return mapped
