r"""The one configuration schema, and the command-line overrides applied to it.

Every experiment file in ``experiments/`` defines ``get_config()`` which starts from
:func:`default_config` and states only what differs. The schema is *locked*: assigning a key that
does not exist is an error, so a typo never silently becomes an ignored value. Types are checked
by ``ml_collections`` on assignment (an ``int`` field refuses ``'abc'``).

Keys whose values are names (a loss, an optimizer, a schedule, an augmentation, a compute dtype)
take them from a registry beside the code they name (:func:`named_keys`, :mod:`cnnzoo.registry`):
:func:`validate` checks them there and ``cnnzoo train --help`` lists them from there.

``config.model`` is the one open section: besides ``name`` it holds the fields handed to the
model class (``activation``, ``shortcut``, ``stem``, ...). Those are checked against the model's
own fields when the model is created, with a one-line error naming the unknown field.

Command-line convention (as in the JAX/Flax examples)::

    python scripts/train.py --config experiments/resnet20_cifar10.py --workdir runs/r20 \
        --config.optimizer.learning_rate=0.05 --config.model.activation=tanh
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import types
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from cnnzoo.errors import ConfigError as ConfigError  # re-exported: cnnzoo.config.ConfigError
from cnnzoo.errors import first_line
from cnnzoo.registry import Registry


def default_config() -> ml_collections.ConfigDict:
    """The schema with its defaults: He et al. (2016) CIFAR-10 recipe for ResNet-20."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # initialisation, data order and augmentation all derive from it

    c.data = ml_collections.ConfigDict()
    # 'cifar10' | 'cifar100' with the archive or tfds; with source='tfds' any image classification
    # dataset of tensorflow-datasets ('imagenet2012', 'imagenette', 'svhn_cropped', 'mnist', ...).
    c.data.name = 'cifar10'
    # 'auto' (CIFAR: an archive, else data tfds prepared, else the official archive fetched) | 'archive'
    # | 'tfds' | 'folder' (data.folder's images): cnnzoo.data.resolver.DATA_SOURCES
    c.data.source = 'auto'
    c.data.archive = ''  # path to an official CIFAR archive; '' = look in data_dir, else fetch it
    c.data.data_dir = ''  # '' = $CNNZOO_DATA_DIR or ~/.cache/cnnzoo
    c.data.manual_dir = ''  # tfds: where a manually downloaded dataset lies (imagenet2012's tar files)
    # An image folder: <folder>/train/<class>/<image> and <folder>/val/<class>/<image> (torchvision's
    # ImageFolder layout; classes in sorted order).
    c.data.folder = ''
    c.data.train_split = 'train'  # tfds split or folder sub-directory to train on
    c.data.eval_split = ''  # '' = tfds 'validation' (else 'test'); folder 'val' (or 'validation', 'test')
    # How batches reach the device: 'device' holds the whole set on the device (CIFAR); 'grain'
    # streams it (cnnzoo.data.streaming); 'auto' = 'device' for CIFAR, 'grain' for the rest.
    c.data.loader = 'auto'
    c.data.workers = -1  # grain: worker processes decoding and cropping; -1 = one per CPU core
    # grain: the side of the square images; 0 = the preset's (imagenet: 224, 299 for inception_v3),
    # else the data's own size (the images must then be square and of one size).
    c.data.image_size = 0
    c.data.validation_size = 0  # e.g. 5000 for He et al.'s 45k/5k split; evaluate on it
    c.data.augment = 'crop_flip'  # the augmentation preset (cnnzoo.data.presets)
    c.data.augment_mode = 'online'  # how the preset is applied

    c.model = ml_collections.ConfigDict()
    c.model.name = 'resnet20'  # a registered model (cnnzoo models); other model.* keys are its fields

    # Initial weights from a PyTorch state_dict file (e.g. torchvision's), converted by
    # cnnzoo.torch.convert; '' = cnnzoo's own random initialisation. The classifier head stays
    # freshly initialised when reset_head is True or when its shape differs (another class count).
    c.init = ml_collections.ConfigDict()
    c.init.torch_checkpoint = ''  # path of a PyTorch state_dict file, or ''
    c.init.reset_head = True  # keep the classifier head freshly initialised

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = 'sgd'  # the optimizer (cnnzoo.training.optimizers); its keys below
    c.optimizer.learning_rate = 0.1  # base (peak) rate
    c.optimizer.momentum = 0.9  # sgd (0: plain SGD), rmsprop, lars
    c.optimizer.nesterov = False  # sgd
    c.optimizer.b1 = 0.9  # adam/adamw/lamb
    c.optimizer.b2 = 0.999  # adam/adamw/lamb
    c.optimizer.eps = 1e-8  # adam/adamw/lamb, rmsprop (added to the root, as PyTorch's)
    c.optimizer.rms_decay = 0.9  # rmsprop: the squared gradients' moving average (PyTorch's alpha)
    c.optimizer.centered = False  # rmsprop: divide by the gradients' standard deviation instead
    c.optimizer.trust_coefficient = 0.001  # lars: the layer-wise rate is this x |w| / |update|
    # Through optax: added to the gradient (sgd, adam, rmsprop, lars), decoupled (adamw, lamb).
    c.optimizer.weight_decay = 1e-4
    # Whether BatchNorm scales/offsets and biases are decayed too. True matches PyTorch's
    # SGD(weight_decay=...) and the original He et al. setup; False is the common modern choice.
    c.optimizer.decay_bn_and_bias = True

    c.schedule = ml_collections.ConfigDict()
    c.schedule.name = 'ratio'  # the learning-rate schedule (cnnzoo.training.schedules); its keys below
    c.schedule.boundaries_epochs = ()  # 'piecewise': where the rate is multiplied by decay_factor
    c.schedule.decay_factor = 0.1  # 'piecewise' and 'ratio'
    c.schedule.ratio = '2:1:1'  # 'ratio': phases at base, base*f, base*f^2, ... (He et al. = 2:1:1)
    c.schedule.warmup_epochs = 0.0  # linear warm-up from 0 before any schedule
    c.schedule.final_fraction = 0.0  # 'cosine': end at base * final_fraction

    c.training = ml_collections.ConfigDict()
    c.training.batch_size = 128  # global batch, split over the devices
    # Independent replicas trained in one program (one map over them): replica k is the run with seed
    # seed + k, written to <workdir>/seed<seed + k>/ like a one-seed workdir.
    c.training.num_seeds = 1
    # With several devices, how many of them the replicas are spread over (a 'seeds' mesh axis); the
    # batch is split over the rest. Must divide both the device count and num_seeds.
    c.training.seed_devices = 1
    # The length of the run, in epochs or in steps: set exactly one (the other 0). On the command
    # line, setting one clears the other. He et al. state theirs in steps: 64k at batch 128.
    c.training.num_epochs = 0.0
    c.training.num_steps = 64_000  # see num_epochs: set exactly one of the two
    c.training.loss = 'cross_entropy'  # the criterion (cnnzoo.training.losses)
    c.training.label_smoothing = 0.0  # cross_entropy, poly1: in [0, 1)
    c.training.focal_gamma = 2.0  # focal: the exponent of (1 - p); 0 is cross-entropy
    c.training.poly1_epsilon = 1.0  # poly1: the coefficient of (1 - p) added to cross-entropy; >= -1
    c.training.dtype = 'float32'  # the compute dtype (cnnzoo.training.dtypes); parameters stay float32
    c.training.eval_batch_size = 1000  # the last batch is padded and masked: every example counts once
    c.training.eval_every_epochs = 1.0  # and at the last step
    c.training.log_every_steps = 50  # a train record in metrics.jsonl and a progress line
    c.training.checkpoint_every_steps = 1000  # and at the last step, and when stopped by a signal
    c.training.keep_checkpoints = 2  # the last k; the best by eval accuracy is kept besides
    c.training.progress_bar = True  # a live bar on a terminal or in a notebook; plain log lines otherwise
    # JAX's persistent compilation cache, so that a resumed or repeated run does not compile again:
    # in $JAX_COMPILATION_CACHE_DIR if set, else ~/.cache/cnnzoo/jax (under $XDG_CACHE_HOME if set).
    c.training.compilation_cache = True
    # Deterministic GPU kernels (XLA's --xla_gpu_deterministic_ops, set by `cnnzoo train` before JAX
    # starts): a GPU run then resumes bitwise, at a cost in speed, and max pooling's gradient does not
    # compile; a CPU run is bitwise without it. README, "On a GPU".
    c.training.deterministic = False

    c.lock()
    c.model.unlock()
    return c


def load_experiment_module(path: str) -> types.ModuleType:
    """Runs an experiment file as a module (its ``get_config``, ``get_sweep``); errors are one line."""
    if not os.path.isfile(path):
        raise ConfigError(f'config file not found: {path}')
    spec = importlib.util.spec_from_file_location(f'cnnzoo_experiment_{abs(hash(path))}', path)
    if spec is None or spec.loader is None:  # a path without a .py suffix finds no loader
        raise ConfigError(f'{path}: not a Python file (an experiment is a .py file with get_config())')
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # any failure of a user's file is reported in one line
        raise ConfigError(f'{path}: {first_line(e, typed=True)}') from e
    return module


def load_config_file(path: str, *args: str) -> ml_collections.ConfigDict:
    """Runs ``get_config()`` of an experiment file; errors are one line."""
    module = load_experiment_module(path)
    if not hasattr(module, 'get_config'):
        raise ConfigError(f'{path} defines no get_config()')
    try:
        config = module.get_config(*args)
    except AttributeError as e:
        raise ConfigError(f'{path}: {first_line(e)}') from e
    except (TypeError, KeyError, ValueError) as e:
        raise ConfigError(f'{path}: {first_line(e)}') from e
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f'{path}: get_config() must return a ConfigDict')
    validate(config)
    return config


def parse_value(text: str) -> Any:
    """A command-line value: a Python literal when it parses as one, else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def literal_text(key: str, value: Any) -> str:
    """A Python value as the text of ``--config.KEY=TEXT``: its literal, so ``'True'`` stays a string
    (the convention of a sweep's grid and of keyword overrides from Python); a path as its string, a
    list as a tuple, a NumPy or JAX scalar as its number. Anything else is a one-line ConfigError."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    elif isinstance(value, list):
        value = tuple(value)
    elif getattr(value, 'shape', None) == () and hasattr(value, 'item'):
        value = value.item()
    text = repr(value)
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ConfigError(f'{key}={text}: not a plain value (a str, number, bool, None, or a tuple of them)') \
            from None
    return text


def set_override(config: ml_collections.ConfigDict, dotted: str, text: str) -> None:
    """Applies ``--config.<dotted>=<text>``; an unknown key or a wrong type is a ConfigError."""
    *parents, leaf = dotted.split('.')
    node = config
    for i, part in enumerate(parents):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            where = '.'.join(parents[: i + 1])
            raise ConfigError(f'unknown config key: {where} (in --config.{dotted})')
        node = node[part]
    if not isinstance(node, ml_collections.ConfigDict):
        raise ConfigError(f'unknown config key: --config.{dotted}')
    value = parse_value(text)
    if leaf not in node:
        if node.is_locked:
            known = ', '.join(sorted(node.keys()))
            raise ConfigError(f'unknown config key: {dotted} (known here: {known})')
        node[leaf] = value
        return
    old = node[leaf]
    if isinstance(old, str) and not isinstance(value, str):
        value = text  # '--config.data.archive=123' is still a path
    elif isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif isinstance(old, tuple) and isinstance(value, (int, float)):
        value = (value,)
    elif isinstance(old, tuple) and isinstance(value, list):
        value = tuple(value)
    if old is not None and not _same_kind(old, value):
        raise ConfigError(
            f'--config.{dotted}: expected {type(old).__name__}, got {text!r}'
        )
    try:
        node[leaf] = value
    except (TypeError, ValueError) as e:
        raise ConfigError(f'--config.{dotted}: {first_line(e)}') from e


def _same_kind(old: Any, new: Any) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, (int, float)):
        return isinstance(new, (int, float)) and not (isinstance(old, int) and isinstance(new, float))
    return isinstance(new, type(old))


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Sequence[tuple[str, str]]) -> ml_collections.ConfigDict:
    for dotted, text in overrides:
        set_override(config, dotted, text)
        # num_epochs and num_steps are two spellings of one duration: the last one stated wins.
        if dotted == 'training.num_epochs':
            config.training.num_steps = 0
        elif dotted == 'training.num_steps':
            config.training.num_epochs = 0.0
    validate(config)
    return config


def named_keys() -> dict[str, Registry]:
    """``{'training.loss': LOSSES, ...}``: the keys whose values are registered names, and each one's
    :class:`cnnzoo.registry.Registry` (the allowed values, their help and the keys each one reads)."""
    from cnnzoo.data.presets import AUGMENT_MODES, AUGMENTATIONS
    from cnnzoo.data.resolver import DATA_SOURCES, LOADERS
    from cnnzoo.training.dtypes import DTYPES
    from cnnzoo.training.losses import LOSSES
    from cnnzoo.training.optimizers import OPTIMIZERS
    from cnnzoo.training.schedules import SCHEDULES

    return {r.key: r for r in (DATA_SOURCES, LOADERS, AUGMENTATIONS, AUGMENT_MODES, LOSSES, OPTIMIZERS, SCHEDULES,
                               DTYPES)}


def get_key(config: ml_collections.ConfigDict, dotted: str) -> Any:
    """The value of a dotted key ('training.loss') of ``config``."""
    node = config
    for part in dotted.split('.'):
        node = node[part]
    return node


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks what the schema's types cannot: names and ranges. Raises a one-line ConfigError."""
    # The data section's own checks (its source decides them).
    from cnnzoo.data.resolver import check_data
    from cnnzoo.training.schedules import check_schedule

    named = named_keys()
    for key, registry in named.items():
        registry.get(get_key(config, key))
    check_schedule(config.schedule)
    _check_unread(config, named['training.loss'])
    t = config.training
    if (t.num_epochs > 0) == (t.num_steps > 0):
        raise ConfigError('set exactly one of config.training.num_epochs and config.training.num_steps '
                          f'to a positive value (got {t.num_epochs} and {t.num_steps})')
    check_data(config.data, t)
    for key, value, ok, allowed in _ranges(config):
        if not ok:
            raise ConfigError(f'config.{key}={value!r}: must be {allowed}')
    if not isinstance(config.model.get('name'), str):
        raise ConfigError('config.model.name must be a model name (see scripts/models.py or list_models())')


def _check_unread(config: ml_collections.ConfigDict, registry: Registry) -> None:
    """Refuses a key that some entries of ``registry`` read (a criterion's parameter), set away from
    its default while the config's entry does not read it: the value would be silently ignored
    (``--config.training.focal_gamma=3`` without ``--config.training.loss=focal``)."""
    chosen = registry.get(get_key(config, registry.key))
    readers: dict[str, list[str]] = {}
    for entry in registry.entries():
        for key in entry.params:
            readers.setdefault(key, []).append(entry.name)
    defaults = default_config()
    for key, names in readers.items():
        value, default = get_key(config, key), get_key(defaults, key)
        if key not in chosen.params and value != default:
            raise ConfigError(f'config.{key}={value!r} is read by {registry.key}={"/".join(names)}; '
                              f'{registry.key}={chosen.name!r} does not read it (leave it at {default!r})')


def _ranges(config: ml_collections.ConfigDict) -> tuple[tuple[str, Any, bool, str], ...]:
    """``(key, value, within range, what is allowed)`` for every numeric key with a range."""
    o, s, t = config.optimizer, config.schedule, config.training
    positive, non_negative, fraction = '> 0', '>= 0', 'in [0, 1)'
    return (
        ('optimizer.learning_rate', o.learning_rate, o.learning_rate > 0, positive),
        ('optimizer.momentum', o.momentum, 0 <= o.momentum < 1, fraction),
        ('optimizer.b1', o.b1, 0 <= o.b1 < 1, fraction),
        ('optimizer.b2', o.b2, 0 <= o.b2 < 1, fraction),
        ('optimizer.eps', o.eps, o.eps > 0, positive),
        ('optimizer.nesterov', o.nesterov, not (o.name == 'sgd' and o.nesterov and o.momentum == 0),
         'False with optimizer.momentum=0 (Nesterov\'s method is a form of momentum; torch.optim.SGD refuses it too)'),
        ('optimizer.rms_decay', o.rms_decay, 0 <= o.rms_decay < 1, fraction),
        ('optimizer.trust_coefficient', o.trust_coefficient, o.trust_coefficient > 0, positive),
        ('optimizer.weight_decay', o.weight_decay, o.weight_decay >= 0, non_negative),
        ('schedule.decay_factor', s.decay_factor, s.decay_factor > 0, positive),
        ('schedule.warmup_epochs', s.warmup_epochs, s.warmup_epochs >= 0, non_negative),
        ('schedule.warmup_epochs', s.warmup_epochs, not t.num_epochs or s.warmup_epochs <= t.num_epochs,
         f'at most the run\'s length (training.num_epochs={t.num_epochs})'),
        ('schedule.final_fraction', s.final_fraction, 0 <= s.final_fraction <= 1, 'in [0, 1]'),
        ('training.batch_size', t.batch_size, t.batch_size > 0, positive),
        ('training.num_seeds', t.num_seeds, t.num_seeds > 0, positive),
        ('training.seed_devices', t.seed_devices, t.seed_devices > 0 and t.num_seeds % t.seed_devices == 0,
         f'> 0 and divide training.num_seeds={t.num_seeds}'),
        ('training.eval_batch_size', t.eval_batch_size, t.eval_batch_size > 0, positive),
        ('training.label_smoothing', t.label_smoothing, 0 <= t.label_smoothing < 1, fraction),
        ('training.focal_gamma', t.focal_gamma, t.focal_gamma >= 0, non_negative),
        ('training.poly1_epsilon', t.poly1_epsilon, t.poly1_epsilon >= -1,
         '>= -1 (below it the loss grows as the label\'s probability nears 1)'),
        ('training.num_epochs', t.num_epochs, t.num_epochs >= 0, non_negative),
        ('training.num_steps', t.num_steps, t.num_steps >= 0, non_negative),
        ('training.eval_every_epochs', t.eval_every_epochs, t.eval_every_epochs > 0, positive),
        ('training.log_every_steps', t.log_every_steps, t.log_every_steps > 0, positive),
        ('training.checkpoint_every_steps', t.checkpoint_every_steps, t.checkpoint_every_steps > 0, positive),
        ('training.keep_checkpoints', t.keep_checkpoints, t.keep_checkpoints > 0, positive),
    )


def flatten(tree: ml_collections.ConfigDict | Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """``{'seed': 0, 'data.name': 'cifar10', ...}``: every leaf of a config, or of its dict (JSON)
    form, as dotted keys in the tree's order; lists become tuples (JSON has no tuples)."""
    items = tree.items(preserve_field_references=False) if isinstance(tree, ml_collections.ConfigDict) else tree.items()
    out = {}
    for key, value in items:
        if isinstance(value, (dict, ml_collections.ConfigDict)):
            out.update(flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = tuple(value) if isinstance(value, list) else value
    return out


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)


def from_json(text: str) -> ml_collections.ConfigDict:
    """Rebuilds a config written by :func:`to_json` on top of the schema (tuples restored)."""
    config = default_config()
    _merge(config, json.loads(text), prefix='')
    validate(config)
    return config


def _merge(node: ml_collections.ConfigDict, values: dict[str, Any], prefix: str) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and key in node and isinstance(node[key], ml_collections.ConfigDict):
            _merge(node[key], value, f'{prefix}{key}.')
            continue
        if isinstance(value, list):  # JSON has no tuples; the schema's sequences are tuples
            value = tuple(value)
        if key not in node and node.is_locked:
            raise ConfigError(f'unknown config key in saved config: {prefix}{key}')
        node[key] = value
