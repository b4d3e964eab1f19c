"""The help text of the config schema and of a model's fields, generated so it cannot drift.

Config keys: the names, types and defaults come from :func:`cnnzoo.config.default_config` itself;
each key's description is the comment that ``cnnzoo/config.py`` writes beside it (on the
``c.section.key = value`` line, or in the comment lines just above it), read from the source with
``ast`` and ``tokenize``. A section's description is the comment above its ``c.section = ...`` line.
A key whose value is a registered name (:func:`cnnzoo.config.named_keys`) lists the names there are,
each with its help, from its registry.

Model fields: the dataclass fields of the model's module (:func:`cnnzoo.models.model_fields`), the
registered model's values as defaults, and the resolved annotations
(:func:`cnnzoo.models.registry.field_types`); a ``typing.Literal`` field shows its allowed values.
This part imports the models (so JAX); the schema part imports neither.
"""

from __future__ import annotations

import ast
import inspect
import io
import textwrap
import tokenize
import typing

from cnnzoo import config as config_lib
from cnnzoo.cli.common import WIDTH


def key_docs() -> dict[str, str]:
    """``{'data.name': "'cifar10' | 'cifar100'", 'init': 'Initial weights from ...', ...}``: the
    comment of every ``c.<dotted> = ...`` assignment in ``default_config``'s source (sections too)."""
    lines, _ = inspect.getsourcelines(config_lib.default_config)
    source = textwrap.dedent(''.join(lines))
    comments, full_line = {}, set()  # line number (1-based in ``source``) -> comment text
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row = tok.start[0]
            comments[row] = tok.string.lstrip('#').strip()
            if not tok.line[:tok.start[1]].strip():
                full_line.add(row)
    docs = {}  # in the order of the source
    function = ast.parse(source).body[0]
    for node in ast.walk(function):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        dotted = _dotted(node.targets[0])
        if dotted is None:
            continue
        above: list[str] = []
        row = node.lineno - 1
        while row in full_line:
            above.insert(0, comments[row])
            row -= 1
        beside = [comments[r] for r in range(node.lineno, (node.end_lineno or node.lineno) + 1) if r in comments and r not in full_line]
        docs[dotted] = (node.lineno, ' '.join(above + beside))
    return {key: doc for key, (_, doc) in sorted(docs.items(), key=lambda item: item[1][0])}


def _dotted(target: ast.expr) -> str | None:
    """``c.data.name`` -> ``'data.name'``; anything but an attribute chain on a name -> None."""
    parts: list[str] = []
    while isinstance(target, ast.Attribute):
        parts.insert(0, target.attr)
        target = target.value
    return '.'.join(parts) if parts and isinstance(target, ast.Name) else None


def _table(rows: list[tuple[str, ...]], widths: list[int] | None = None, indent: str = '  ') -> list[str]:
    """Aligned columns (``widths``, by default the widest cell of each); the last column, a
    description, wraps under itself."""
    widths = widths or [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lead = len(indent) + sum(w + 2 for w in widths)
    out = []
    for *cells, text in rows:
        head = indent + ''.join(cell.ljust(w + 2) for cell, w in zip(cells, widths))
        wrapped = textwrap.wrap(text, max(WIDTH - lead, 30)) or ['']
        out.append((head + wrapped[0]).rstrip())
        out += [' ' * lead + more for more in wrapped[1:]]
    return out


def schema_help(model_name: str | None = None) -> str:
    """Every config key, grouped by section: ``key  type  default  description``; with
    ``model_name`` (the model the command line or experiment names), ``model.name`` shows it."""
    docs = key_docs()
    order = {key: i for i, key in enumerate(docs)}  # the source's order, not ConfigDict's sorted one
    values = config_lib.flatten(config_lib.default_config())
    named = config_lib.named_keys()  # the registries (light modules: no JAX)
    sections: dict[str, list] = {}
    for key in sorted(values, key=lambda k: (order.get(k.rpartition('.')[0], -1), order.get(k, len(order)))):
        value = values[key]
        section = key.rpartition('.')[0]
        shown = repr(value)
        if key == 'model.name' and model_name is not None and model_name != value:
            shown = f'{model_name!r} (given; default {value!r})'
        doc = docs.get(key, '') + (f'. One of: {choices(named[key], key)}' if key in named else '')
        sections.setdefault(section, []).append((key, type(value).__name__, shown, doc))
    rows = [r for group in sections.values() for r in group]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    out = ['config keys (--config.KEY=VALUE; types, defaults and comments from cnnzoo/config.py):']
    for section, group in sections.items():
        out.append('')
        doc = docs.get(section, '')
        out += textwrap.wrap(f'{section or "top level"}' + (f': {doc}' if doc else ''), WIDTH,
                             subsequent_indent='    ')
        out += _table(group, widths)
        if section == 'model':
            out.append('  model.FIELD: the model\'s own fields (list them: --config.model.name=NAME --help; '
                       'the names: cnnzoo models)')
    return '\n'.join(out)


def choices(registry, key: str) -> str:
    """A registry's names with their help, and the keys each reads of its own section's."""
    section = key.rpartition('.')[0]

    def own(entry) -> str:
        keys = [p for p in entry.params if p.rpartition('.')[0] == section and p != key]
        return f'; {", ".join(keys)}' if keys else ''

    return '; '.join(f'{e.name!r} ({e.help}{own(e)})' for e in registry.entries())


def describe_type(hint) -> str:
    """``Literal['A', 'B']`` -> ``'A' | 'B'``; ``int`` -> ``int``; ``Sequence[int]`` -> ``Sequence[int]``."""
    if typing.get_origin(hint) is typing.Literal:
        return ' | '.join(map(repr, typing.get_args(hint)))
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace('typing.', '').replace('collections.abc.', '')


def _show(value) -> str:
    """A default as written in a config: ``'relu'``, ``(3, 3, 3)``; a class or function by its name."""
    return value.__name__ if isinstance(value, type) or callable(value) else repr(value)


def model_help(name: str) -> str:
    """The fields of model ``name``: ``field  default  type`` (a Literal's allowed values)."""
    from cnnzoo.models import cifar_fields, create_model, list_models, model_fields
    from cnnzoo.models.registry import field_types
    from cnnzoo.run.validation import _RUN_OWNED_FIELDS

    if name not in list_models():
        raise config_lib.ConfigError(f'config.model.name={name!r}: unknown model; known models: '
                                     f'{", ".join(list_models())}')
    module = create_model(name, num_classes=10)
    types = field_types(module)
    rows, run_owned = [], []
    for field in model_fields(module):
        if field in _RUN_OWNED_FIELDS:
            run_owned.append(f'model.{field} (from {_RUN_OWNED_FIELDS[field]})')
            continue
        line = f'model.{field}: {describe_type(types.get(field, typing.Any))} = {_show(getattr(module, field))}'
        rows += textwrap.wrap(line, WIDTH, initial_indent='  ', subsequent_indent='      ')
    out = [f'fields of model {name} (class {type(module).__name__}), set with --config.model.FIELD=VALUE;',
           'shown as FIELD: TYPE (or the allowed values) = DEFAULT', '', *rows]
    if run_owned:
        out += ['', *textwrap.wrap(f'set by the run, not in the model section: {", ".join(run_owned)}', WIDTH)]
    cifar = cifar_fields(name)
    if cifar:
        flags = ' '.join(f'--config.model.{k}={v}' for k, v in cifar.items())
        out += ['', f'its 32x32 (CIFAR) variant: {flags}']
    return '\n'.join(out)
