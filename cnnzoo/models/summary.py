"""Model summaries: parameter counts, and FLOPs from XLA's cost analysis of the compiled graph."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def count_params(tree) -> int:
    """Number of scalars in a pytree of arrays (or ShapeDtypeStructs from ``jax.eval_shape``).

    Pass ``variables['params']`` for the trainable count; ``batch_stats`` are not parameters.
    """
    return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(tree))


def forward_flops(model, image_size: int, batch: int = 1, *, init_size: int | None = None) -> float:
    """FLOPs of one eval-mode forward pass per image, from XLA's HLO cost analysis.

    Nothing is run or compiled: the function is lowered and XLA counts its operations (a
    multiply-add is 2 FLOPs; convolutions and matmuls dominate, elementwise ops are included).
    ``init_size`` is the image size the variables are made at when it differs: Inception v3 builds
    its auxiliary head at init, which needs 299 pixels, yet evaluates at smaller sizes.
    """
    def shape(size):
        return jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)

    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False),
                               shape(init_size or image_size))
    lowered = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, shape(image_size))
    analysis = lowered.cost_analysis()
    if analysis is None:
        raise RuntimeError(f'XLA gives no cost analysis on the {jax.default_backend()} backend, so no FLOPs count')
    return float(analysis['flops']) / batch


def summary_rows(names, *, sizes=(32, 224), num_classes=(10, 1000)):
    """One dict per model: parameters at each class count and forward GFLOPs at each image size.

    The FLOPs at size ``sizes[i]`` are measured with ``num_classes[i]`` classes (CIFAR at 32,
    ImageNet at 224). A size the model's layout cannot evaluate (its feature maps would vanish)
    gives ``None``.
    """
    from cnnzoo.models.registry import create_model, min_input_size

    rows = []
    for name in names:
        row = {'model': name}
        init_size = min_input_size(name)
        for size, classes in zip(sizes, num_classes):
            model = create_model(name, num_classes=classes)
            x = jax.ShapeDtypeStruct((1, max(size, init_size), max(size, init_size), 3), jnp.float32)
            variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
            row[f'params_{classes}'] = count_params(variables['params'])
            try:
                flops = forward_flops(model, size, init_size=max(size, init_size))
            except ValueError:  # too small for this layout: the models raise a one-line ValueError
                flops = None
            row[f'gflops_{size}'] = None if flops is None else flops / 1e9
        rows.append(row)
    return rows


def markdown_header(*, sizes=(32, 224), num_classes=(10, 1000)) -> str:
    """The two header lines of :func:`markdown_table`."""
    head = (['model'] + [f'params ({c} classes)' for c in num_classes]
            + [f'GFLOPs {s}x{s}' for s in sizes])
    return '| ' + ' | '.join(head) + ' |\n|' + '---|' * len(head)


def markdown_row(r, *, sizes=(32, 224), num_classes=(10, 1000)) -> str:
    """One row of :func:`markdown_table` (printed as soon as its model is measured)."""
    cells = [r['model']] + [f'{r[f"params_{c}"]:,}' for c in num_classes]
    cells += ['—' if r[f'gflops_{s}'] is None else f'{r[f"gflops_{s}"]:.3f}' for s in sizes]
    return '| ' + ' | '.join(cells) + ' |'


def markdown_table(rows, *, sizes=(32, 224), num_classes=(10, 1000)) -> str:
    """The rows of :func:`summary_rows` as a markdown table."""
    lines = [markdown_header(sizes=sizes, num_classes=num_classes)]
    lines += [markdown_row(r, sizes=sizes, num_classes=num_classes) for r in rows]
    return '\n'.join(lines)
