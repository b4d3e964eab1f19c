"""Deterministic GPU kernels (``config.training.deterministic``): what the switch does, and where.

On a CPU a run is bitwise reproducible as it is: the same program on the same machine gives the same
bits, and a resumed run continues the uninterrupted one bit for bit (README, "Runs: resume,
preemption, outputs"). On a GPU two things can break that, both in XLA's GPU backend, not in cnnzoo:

- XLA picks among cuDNN convolution and cuBLAS/Triton matrix-product algorithms by timing them when
  it compiles (autotuning), and a fresh process may time them differently and pick others, whose
  rounding differs. openxla.org/xla/determinism ("Determinism (GPU)") says so;
- some of those algorithms, and scatter and select-and-scatter, are not deterministic even within
  one program (atomic accumulation in an order that varies from run to run): same page.

XLA's flag ``--xla_gpu_deterministic_ops=true`` ("Guarantees run-to-run determinism on GPU", its help
in ``xla/debug_options_flags.cc``) takes the first candidate instead of the fastest when it autotunes,
and asks for deterministic algorithms (``RequireDeterminism`` in ``xla/service/gpu``; it implies
``--xla_gpu_exclude_nondeterministic_ops``, openxla/xla#12520). It costs speed, by an amount that
depends on the model and the card (``scripts/gpu/run.sh resume`` measures ResNet-20's), and XLA has
no deterministic select-and-scatter, the gradient of max pooling: there compilation fails
(UNIMPLEMENTED ... "does not have a deterministic implementation", google/flax#4233), which concerns
VGG, AlexNet, GoogLeNet, Inception and the ImageNet-stem ResNets. Hence off by default.

XLA reads ``XLA_FLAGS`` once, when JAX starts its backend (the first use of a device), so the flag
must be in the environment before that (docs.jax.dev/en/latest/xla_flags.html). Who does what:

- the command line (``cnnzoo train``) calls :func:`enable_deterministic_gpu_ops` before anything
  touches JAX, when the config asks for it: a process-wide change, which a library call never makes;
- the loop calls :func:`check_deterministic` once the backend is up: a run that asks for the switch
  on a GPU whose backend started without it stops before it trains, in one line that says what to
  do, never as a silent no-op. On other backends the flag means nothing and nothing is checked.

Flags compose (:func:`with_xla_flag`): ours is appended to what ``XLA_FLAGS`` holds, and a flag
already named there, with any value, is the user's and is kept.

PRNG: cnnzoo's random streams are JAX's default threefry keys (:mod:`cnnzoo.rngs`), computed the same
way on every backend; nothing about them changes with the switch.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import MutableMapping

from cnnzoo.errors import ConfigError

DETERMINISTIC_OPS = '--xla_gpu_deterministic_ops'
# How XLA's boolean flags say true (bare: true; absl's spellings otherwise, in any case).
_TRUE = ('', 'true', 't', 'yes', 'y', '1')


def xla_flag(flags: str, name: str) -> str | None:
    """The value ``flags`` (an ``XLA_FLAGS`` string) gives flag ``name`` (``'--xla_...'``): the last
    one written wins, as XLA parses them; ``''`` for a bare ``--name``; None when it is not named."""
    value = None
    for token in shlex.split(flags):
        key, equals, rest = token.partition('=')
        if key == name:
            value = rest if equals else ''
    return value


def with_xla_flag(flags: str, name: str, value: str) -> str:
    """``flags`` with ``name=value`` appended, unless ``flags`` names the flag already: a value the
    user set wins over the project's. Every place that adds to ``XLA_FLAGS`` goes through here."""
    if xla_flag(flags, name) is not None:
        return flags
    return f'{flags} {name}={value}'.strip()


def backend_started() -> bool:
    """Whether JAX has started its backends in this process (after which XLA_FLAGS is not read again).

    JAX has no public call for this; ``jax._src.xla_bridge.backends_are_initialized`` (JAX 0.4 to
    0.10 at least) answers it, and tests/test_gpu_command.py checks that it still does. Should a
    later JAX drop it, its dict of started backends answers, and failing that the answer is no: the
    command line then sets the flag as before, and only a late call from Python goes unnoticed."""
    from jax._src import xla_bridge

    started = getattr(xla_bridge, 'backends_are_initialized', None)
    if started is not None:
        return bool(started())
    return bool(getattr(xla_bridge, '_backends', None))


def enable_deterministic_gpu_ops(environ: MutableMapping[str, str] | None = None) -> None:
    """Adds ``--xla_gpu_deterministic_ops=true`` to ``XLA_FLAGS`` for this process and the ones it
    starts, unless ``XLA_FLAGS`` names the flag already (the user's value is kept; the loop's
    :func:`check_deterministic` refuses a GPU run that asks for the switch against a ``false`` there).

    For the command line, before anything uses a device; from Python, call it first thing, in a
    fresh process. Once JAX's backend has started it is too late: a one-line ConfigError says so.
    """
    environ = os.environ if environ is None else environ
    flags = environ.get('XLA_FLAGS', '')
    if xla_flag(flags, DETERMINISTIC_OPS) is not None:
        return
    if backend_started():
        raise ConfigError(f'config.training.deterministic=True: JAX started its backend before {DETERMINISTIC_OPS}=true '
                          'could be set, so it cannot take effect in this process; set '
                          f'XLA_FLAGS="{DETERMINISTIC_OPS}=true" before the first JAX call (a fresh process)')
    environ['XLA_FLAGS'] = with_xla_flag(flags, DETERMINISTIC_OPS, 'true')


def check_deterministic(config, platform: str | None = None) -> None:
    """Once JAX's backend is up: a run with ``config.training.deterministic`` on a GPU whose
    ``XLA_FLAGS`` do not turn ``--xla_gpu_deterministic_ops`` on is refused in one line (exit status
    2), before anything is written. ``platform`` is ``jax.default_backend()`` unless given."""
    if not config.training.deterministic:
        return
    if platform is None:
        import jax

        platform = jax.default_backend()
    if platform != 'gpu':
        return  # XLA's GPU flags mean nothing elsewhere; a CPU run is deterministic as it is
    value = xla_flag(os.environ.get('XLA_FLAGS', ''), DETERMINISTIC_OPS)
    if value is not None and value.lower() in _TRUE:
        return
    if value is not None:
        raise ConfigError(f'config.training.deterministic=True, but XLA_FLAGS sets {DETERMINISTIC_OPS}={value}: '
                          'drop one of the two')
    raise ConfigError(f'config.training.deterministic=True, but JAX started its GPU backend without '
                      f'{DETERMINISTIC_OPS}=true in XLA_FLAGS, so its kernels may not be deterministic: `cnnzoo '
                      'train` sets it; from Python, call cnnzoo.run.determinism.enable_deterministic_gpu_ops() '
                      'before the first JAX call, in a fresh process')
