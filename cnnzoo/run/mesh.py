"""The run's mesh and the placement of host arrays on it, over every device of every process.

The mesh is ``seeds`` x ``data`` (cnnzoo.run.loop: the replicas of a several-seed run along ``seeds``, a
global batch split along ``data``). In a multi-process run each process places only its own
devices' parts, from its own copy of a value (``place``) or from its own share of a batch
(``place_batch``).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


def make_mesh(seed_devices: int = 1):
    """The run's mesh: every device of every process, as ``seeds`` x ``data`` (``seed_devices`` x the rest)."""
    n = jax.device_count()
    return jax.make_mesh((seed_devices, n // seed_devices), ('seeds', 'data'),
                         axis_types=(jax.sharding.AxisType.Auto,) * 2)


def place(mesh, value, spec=P()):
    """``value`` (a host or single-device array) laid out on ``mesh`` as ``spec`` says; in a
    multi-process run each process places only its own devices' parts, from its own ``value``."""
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, NamedSharding(mesh, spec), lambda index: host[index])


def to_host(tree):
    """``jax.device_get``, also for arrays split over several processes' devices (gathered first)."""
    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return jax.device_get(x)

    return jax.tree_util.tree_map(fetch, tree)


def replicate(mesh, value):
    """``value`` copied to every device of ``mesh`` (:func:`place` with nothing split)."""
    return place(mesh, value)


def place_batch(mesh, local: dict, keys=('image', 'label', 'mask')) -> dict:
    """A streamed batch on the mesh: each process gives its share (``local``, numpy), split along
    ``data``; together they are the global batch (``jax.make_array_from_process_local_data``)."""
    sharding = NamedSharding(mesh, P('data'))
    # A copy: grain's worker processes hand over batches in shared memory, which is released only
    # once nothing refers to it, and a CPU device array may keep referring to the buffer it was
    # made from.
    return {k: jax.make_array_from_process_local_data(sharding, np.array(local[k])) for k in keys if k in local}
