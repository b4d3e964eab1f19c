"""The device layout of a CPU run started from the command line (issue 31.2): the one place that decides it.

On the development machine (2 cores) two single-threaded CPU devices, each taking half of the batch,
trained ResNet-20 faster than one device whose thread pool spans both cores (BENCHMARKS, "Scale on
two cores", row (b); results/cpu/profile/ for the figure after the chunked weight gradient): XLA's
CPU convolutions scale poorly over threads inside one kernel, while two devices each run whole
kernels on their own core. XLA takes the layout from ``XLA_FLAGS`` when JAX starts its backend, so
only the command line, before anything touches JAX, can choose it; a library call never does.

The layout is left alone wherever the choice is not ours or not measured: ``XLA_FLAGS`` or
``JAX_NUM_CPU_DEVICES`` set by the user, a JAX platform other than the CPU named or installed (a GPU
plugin), fewer than two usable cores, a run of several processes or of several seeds, or a batch
that the devices would not split evenly. A checkpoint holds whole arrays, so a run resumed on the
other layout continues (tests/test_cpu_layout.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

from cnnzoo.run.determinism import backend_started, with_xla_flag

DEVICE_COUNT = '--xla_force_host_platform_device_count'
# One thread per device: Eigen's pool off, and XLA's intra-op pool of one thread.
ONE_THREAD = (('--xla_cpu_multi_thread_eigen', 'false'), ('intra_op_parallelism_threads', '1'))


def cpu_devices(config, environ: Mapping[str, str], usable_cpus: int, gpu_plugin: bool) -> int:
    """How many single-threaded CPU devices a command-line run of ``config`` gets: one per usable
    core where that layout applies (see the module's docstring), else 1 (JAX's default layout)."""
    t = config.training
    if environ.get('XLA_FLAGS', '').strip() or environ.get('JAX_NUM_CPU_DEVICES'):
        return 1
    if environ.get('JAX_PLATFORMS', 'cpu').split(',')[0] not in ('', 'cpu') or gpu_plugin:
        return 1
    n = usable_cpus
    if n < 2 or t.num_seeds != 1 or t.batch_size % n or t.eval_batch_size % n:
        return 1
    return n


def installed_gpu_plugin() -> bool:
    """Whether a JAX plugin for another platform (CUDA, ROCm, ...) is installed: JAX would then
    default to it, and the CPU's layout is no concern of the run."""
    import importlib.util
    import pkgutil
    from importlib.metadata import entry_points

    if list(entry_points(group='jax_plugins')):
        return True
    spec = importlib.util.find_spec('jax_plugins')  # the namespace of plugins that register by module
    return spec is not None and any(True for _ in pkgutil.iter_modules(spec.submodule_search_locations or []))


def choose_cpu_layout(config, *, joins: bool = False, environ: MutableMapping[str, str] | None = None) -> int:
    """For the command line, before anything starts JAX: sets ``XLA_FLAGS`` for the layout
    :func:`cpu_devices` picks and returns its device count (1: nothing was set)."""
    environ = os.environ if environ is None else environ
    if joins or backend_started():
        return 1
    n = cpu_devices(config, environ, len(os.sched_getaffinity(0)), installed_gpu_plugin())
    if n > 1:
        flags = with_xla_flag(environ.get('XLA_FLAGS', ''), DEVICE_COUNT, str(n))
        for name, value in ONE_THREAD:
            flags = with_xla_flag(flags, name, value)
        environ['XLA_FLAGS'] = flags
    return n
