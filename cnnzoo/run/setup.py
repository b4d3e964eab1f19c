"""What a run is made of: its data, model, schedule, mesh and initial state, built the same way for
training, evaluation and the comparison tools (:func:`build`), and the data alone (:func:`open_data`).

Several seeds in one program (``training.num_seeds=K > 1``): the state holds K replicas stacked on a
leading axis (the step is shared; :mod:`cnnzoo.training.replicas`); replica k initialises exactly as
the run with seed ``seed + k``. A one-seed run's state is one model's, with no such axis.
"""

from __future__ import annotations

import dataclasses
import os

import jax
from jax.sharding import PartitionSpec as P

from cnnzoo import data as data_lib
from cnnzoo.data import resolver
from cnnzoo.errors import ConfigError
from cnnzoo.models import create_model
from cnnzoo.rngs import init_key
from cnnzoo.run.mesh import make_mesh, place, replicate
from cnnzoo.run.validation import check_against_data, stream_image_size
from cnnzoo.training import (
    TrainState,
    compute_dtype,
    init_variables,
    make_optimizer,
    make_schedule,
    stack_replicas,
    steps_from_epochs,
)


@dataclasses.dataclass
class Setup:
    """What a run is made of, built the same way for training, evaluation and the comparison tools."""

    dataset: data_lib.Dataset
    model: object
    state: TrainState
    steps_per_epoch: int
    total_steps: int
    learning_rate_fn: object
    mesh: jax.sharding.Mesh
    seeds: list[int]  # one seed: the state is one model's; several: one replica per seed, stacked

    @property
    def several(self) -> bool:
        """Whether the state holds several replicas (one per seed) on a leading axis."""
        return len(self.seeds) > 1


def build(config, *, dataset: data_lib.Dataset | None = None, model=None, initial_weights: bool = True,
          training: bool = True) -> Setup:
    """Data, model, schedule and the initial state of ``config``.

    ``model``: the model :func:`cnnzoo.run.validation.check_config` checked (made for the data's
    class count here when it was not known then); None: made from ``config`` here.

    ``initial_weights=False`` skips ``config.init.torch_checkpoint``: a state about to be replaced by
    a restored checkpoint (resume, evaluation) needs neither the file nor the time to convert it.
    ``training=False`` (an evaluation): a streamed image folder needs only its evaluation split, and
    the training set's size is not checked against the run's length.
    """
    dataset = dataset or open_data(config, training=training)
    if config.data.augment_mode == 'expand':
        dataset = data_lib.expand_dataset(dataset, config.data.augment, config.seed)
    if model is None:
        fields = {k: v for k, v in config.model.items() if k != 'name'}
        model = create_model(config.model.name, num_classes=dataset.num_classes,
                             dtype=compute_dtype(config.training.dtype), **fields)
    elif model.num_classes != dataset.num_classes:  # a streamed set's classes, known once it is opened
        model = model.clone(num_classes=dataset.num_classes)

    batch_size = config.training.batch_size
    steps_per_epoch = dataset.num_train // batch_size if training else max(1, dataset.num_train // batch_size)
    if steps_per_epoch == 0:
        raise ConfigError(f'batch size {batch_size} is larger than the training set ({dataset.num_train} images)')
    t = config.training
    total_steps = t.num_steps if t.num_steps > 0 else steps_from_epochs(t.num_epochs, steps_per_epoch)
    if training:
        check_against_data(config, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    learning_rate_fn = make_schedule(config, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    tx = make_optimizer(config.optimizer, learning_rate_fn)

    mesh = make_mesh(t.seed_devices)  # the batch sizes divide over its devices: check_config saw to it
    states = []
    seeds = replica_seeds(config)
    for seed in seeds:  # replica k: exactly the initialisation of the run with seed + k
        variables = init_variables(model, init_key(seed), dataset.image_shape)
        if initial_weights and config.init.torch_checkpoint:  # validation: one seed only
            variables = _variables_from_torch(config, model, variables)
        states.append(TrainState.create(apply_fn=model.apply, variables=variables, tx=tx))
    state = place_state(mesh, states[0] if len(seeds) == 1 else stack_replicas(states), several=len(seeds) > 1)
    return Setup(dataset, model, state, steps_per_epoch, total_steps, learning_rate_fn, mesh, seeds)


def place_state(mesh, state: TrainState, *, several: bool) -> TrainState:
    """A state laid out on the run's mesh: copied along ``data``; a state holding several replicas
    has its replica axis along ``seeds`` (one device unless ``training.seed_devices`` says more)."""
    spec = P('seeds') if several else P()
    spread = lambda tree: jax.tree_util.tree_map(lambda x: place(mesh, x, spec), tree)  # noqa: E731
    return state.replace(step=replicate(mesh, state.step), params=spread(state.params),
                         batch_stats=spread(state.batch_stats), opt_state=spread(state.opt_state))


def open_data(config, *, training: bool = True):
    """The data of ``config`` (:func:`cnnzoo.data.resolver.open_data`): a :class:`cnnzoo.data.Dataset`
    held whole on the device, or a :class:`cnnzoo.data.streaming.Stream` of this process's share
    (``training=False``: of an image folder, the evaluation split alone is needed)."""
    return resolver.open_data(config, training=training, image_size=stream_image_size(config),
                              process_index=jax.process_index(), process_count=jax.process_count())


def replica_seeds(config) -> list[int]:
    """The seeds of a run's replicas: ``seed, seed + 1, ..., seed + num_seeds - 1``."""
    return [config.seed + k for k in range(config.training.num_seeds)]


def _variables_from_torch(config, model, variables):
    """``variables`` overwritten by ``config.init.torch_checkpoint`` (a PyTorch state_dict file)."""
    from cnnzoo.torch.convert import ConversionError, init_from_state_dict, load_torch_checkpoint

    try:
        state_dict = load_torch_checkpoint(_path(config.init.torch_checkpoint))
        return init_from_state_dict(variables, state_dict, model, reset_head=config.init.reset_head)
    except ConversionError as e:
        raise ConfigError(f'config.init.torch_checkpoint: {e}') from e


def _path(text: str) -> str | None:
    return os.path.expanduser(text) if text else None


def compilation_cache_dir() -> str:
    """Where :func:`use_compilation_cache` keeps compiled programs when JAX has no directory set."""
    cache_home = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(cache_home, 'cnnzoo', 'jax')


def use_compilation_cache() -> None:
    """Turns on JAX's persistent compilation cache for this process (``config.training.compilation_cache``).

    A directory already configured (``$JAX_COMPILATION_CACHE_DIR``, ``jax.config``) is kept; else
    :func:`compilation_cache_dir`. JAX stores only programs that took over a second to compile, keyed
    by the program, the devices, the JAX/XLA versions and XLA_FLAGS. On a CPU a hit is the executable
    a compilation would give, so a resumed run stays on its trajectory bit for bit; on a GPU a fresh
    compilation may time and pick other convolution algorithms, and a hit keeps the earlier picks
    (README, "Bitwise, on a CPU and on a GPU").
    """
    if not jax.config.jax_compilation_cache_dir:  # type: ignore[attr-defined]  # set at run time, not in jax's stubs
        jax.config.update('jax_compilation_cache_dir', compilation_cache_dir())
