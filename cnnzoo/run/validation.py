"""Up-front checks of a whole config, before any data is read, anything is written or compiled.

``check_config(config)`` is what every entry point calls first (``train_and_evaluate``,
``evaluate_checkpoint``, a sweep's ``--list``, the comparison tools): it raises
:class:`cnnzoo.config.ConfigError` with one line naming the key, the bad value and what is
allowed, and the command line turns that into exit status 2.

It adds to :func:`cnnzoo.config.validate` (registered names, choices and ranges of the schema
itself, cheap enough to run on every override) what needs the libraries: the model name and every
model field, judged by the model's own declarations (:func:`cnnzoo.models.registry.check_fields`);
the batch sizes against the number of devices; and a warm-up stated
in epochs against a run stated in steps, with the training set's size taken from the archive's or
the folder's index, before any image is read (:func:`train_set_size`; the same check runs again on
the loaded data, :func:`check_against_data`, for the sources whose size is known only then).
"""

from __future__ import annotations

from cnnzoo.config import ConfigError, validate
from cnnzoo.data import resolver

# Set by the run from config.training.dtype / the data's class count, never by the model section.
_RUN_OWNED_FIELDS = {'dtype': 'config.training.dtype', 'num_classes': "the data's class count"}


def check_config(config, *, devices: bool = True):
    """Raises a one-line ConfigError for anything in ``config`` that would fail later; returns the
    model it checked (a flax Module with the run's compute dtype, for the class count the config
    implies: CIFAR's, else the data's, known once it is opened; :func:`cnnzoo.run.setup.build` takes it).

    ``devices=False`` leaves out the one check that starts JAX's backend (the batch sizes against the
    device count): a process about to join a multi-process run checks the rest before it waits for
    the others, and the device count once it has joined (:func:`check_devices`).
    """
    validate(config)
    if config.training.num_seeds > 1 and config.init.torch_checkpoint:
        raise ConfigError(f'config.training.num_seeds={config.training.num_seeds} with config.init.torch_checkpoint: '
                          'replicas start from their own seeds; train from a checkpoint one seed at a time')
    resolver.check_ready(config.data)  # keys an experiment file may leave to the command line
    model = _check_model(config)
    _check_warmup_against_steps(config)
    if devices:
        check_devices(config)
    return model


def _check_model(config):
    from cnnzoo.data.archives import NUM_CLASSES
    from cnnzoo.models import cifar_fields, create_model, list_models, min_input_size
    from cnnzoo.models.registry import FieldError

    name = config.model.name
    if name not in list_models():
        raise ConfigError(f'config.model.name={name!r}: unknown model; known models: {", ".join(list_models())}')
    fields = {k: v for k, v in config.model.items() if k != 'name'}
    for key, owner in _RUN_OWNED_FIELDS.items():
        if key in fields:
            raise ConfigError(f'config.model.{key} is set by the run ({owner}), not in the model section')
    from cnnzoo.training import compute_dtype

    try:
        model = create_model(name, num_classes=NUM_CLASSES.get(config.data.name, 10),
                             dtype=compute_dtype(config.training.dtype), **fields)
    except FieldError as e:
        if e.field in fields and e.problem != str(e):  # a value the field does not allow
            raise ConfigError(f'config.model.{e.field}={fields[e.field]!r}: {e.problem} ({name})') from None
        raise ConfigError(f'config.model.{e.field}: {e}') from None
    except ValueError as e:  # a model's own check of several fields together
        raise ConfigError(f'config.model ({name}): {e}') from None
    if resolver.loader_of(config.data) == 'grain':
        size = stream_image_size(config)
        if size and size < min_input_size(name, cifar=_is_cifar_variant(name, fields)):
            needed = min_input_size(name, cifar=_is_cifar_variant(name, fields))
            raise ConfigError(f'config.data.image_size={size}: {name} needs inputs of at least {needed}x{needed}')
        return model
    needed = cifar_fields(name)
    if min_input_size(name) > 32 and any(fields.get(k) != v for k, v in needed.items()):
        flags = ' '.join(f'--config.model.{k}={v}' if isinstance(v, str) else f'--config.model.{k}="{v}"'
                         for k, v in needed.items())
        raise ConfigError(f'config.model.name={name!r} needs {min_input_size(name)}x{min_input_size(name)} '
                          f'inputs and CIFAR images are 32x32: use its CIFAR variant ({flags})')
    return model


def _is_cifar_variant(name: str, fields: dict) -> bool:
    from cnnzoo.models import cifar_fields

    needed = cifar_fields(name)
    return bool(needed) and all(fields.get(k) == v for k, v in needed.items())


def stream_image_size(config) -> int:
    """The side of the streamed images: ``data.image_size``, else the ImageNet preset's (224, or the
    model's smallest input where that is larger: 299 for inception_v3); 0 when it is the data's own
    size (known once the data is opened)."""
    from cnnzoo.models import min_input_size

    if config.data.image_size:
        return config.data.image_size
    if config.data.augment == 'imagenet':
        return max(224, min_input_size(config.model.name))
    return 0


def _check_warmup_against_steps(config) -> None:
    """A warm-up in epochs longer than a run in steps, judged from the training set's size."""
    t = config.training
    if not (t.num_steps > 0 and config.schedule.warmup_epochs > 0):
        return
    size = train_set_size(config.data)
    if not size or size < t.batch_size:  # unknown yet, or too small a set: said once the data is loaded
        return
    if config.data.augment_mode == 'expand':
        from cnnzoo.data.presets import AUGMENTATIONS

        size *= 1 + len(AUGMENTATIONS.get(config.data.augment).meta.get('expand', ()))
    check_against_data(config, steps_per_epoch=size // t.batch_size, total_steps=t.num_steps)


def train_set_size(data) -> int | None:
    """The number of training examples of a config's data section, counted without reading an image
    (:func:`cnnzoo.data.resolver.train_set_size`); None where only loading the data tells."""
    return resolver.train_set_size(data)


def check_devices(config) -> None:
    """The checks that need the device count: ``training.seed_devices`` and the batch sizes divide over it."""
    import jax

    t = config.training
    if jax.device_count() % t.seed_devices:
        raise ConfigError(f'config.training.seed_devices={t.seed_devices} does not divide the {jax.device_count()} '
                          'devices')
    n = jax.device_count() // t.seed_devices  # the devices a batch is split over
    for key in ('batch_size', 'eval_batch_size'):
        if t[key] % n:
            raise ConfigError(f'config.training.{key}={t[key]} does not divide over {n} devices; '
                              f'use a multiple of {n}')


def check_against_data(config, *, steps_per_epoch: int, total_steps: int) -> None:
    """The checks that need the training set's size; raises a one-line ConfigError."""
    from cnnzoo.training.schedules import steps_from_epochs

    if total_steps < 1:
        raise ConfigError(f'config.training.num_epochs={config.training.num_epochs} is less than one step '
                          f'(an epoch is {steps_per_epoch} steps of config.training.batch_size)')
    warmup = steps_from_epochs(config.schedule.warmup_epochs, steps_per_epoch)
    if warmup > total_steps:
        raise ConfigError(f'config.schedule.warmup_epochs={config.schedule.warmup_epochs} is {warmup} steps, '
                          f'longer than the whole run ({total_steps} steps)')


__all__ = ['ConfigError', 'check_against_data', 'check_config', 'check_devices', 'stream_image_size', 'train_set_size']
