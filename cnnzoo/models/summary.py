"""Model summaries: parameter counts."""

from __future__ import annotations

import jax


def count_params(tree) -> int:
    """Number of scalars in a pytree of arrays (or ShapeDtypeStructs from ``jax.eval_shape``).

    Pass ``variables['params']`` for the trainable count; ``batch_stats`` are not parameters.
    """
    return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(tree))
