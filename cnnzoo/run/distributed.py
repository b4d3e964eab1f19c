"""One run over several processes (machines): ``jax.distributed.initialize``, checked and bounded.

Every process runs the same command with its own ``--process-id``; JAX then sees the devices of all
of them as one set (``jax.devices()``), the loop's mesh spans them, and the data-parallel step is
the one of a single machine. Where a cluster environment tells JAX the layout (SLURM, Open MPI, a
TPU pod, Kubernetes with JAX's launcher), ``--distributed`` alone lets JAX detect it.

CPU processes exchange their collectives through gloo (set here before JAX starts its backend), so
two processes on one machine can try the whole path; GPUs use NCCL without anything to set.
"""

from __future__ import annotations

import re
import socket
import time

from cnnzoo.errors import ConfigError, RunError

DEFAULT_TIMEOUT_S = 300
# How long a process may go without answering before the others stop (JAX's own default is 100 s).
DEFAULT_HEARTBEAT_S = 30


def initialize(*, coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, timeout_s: int = DEFAULT_TIMEOUT_S,
               heartbeat_s: int = DEFAULT_HEARTBEAT_S) -> None:
    """Joins this process to a multi-process run; all three of ``coordinator``, ``num_processes``
    and ``process_id``, or none of them (JAX's auto-detection). Waits at most ``timeout_s`` seconds
    for the others; every failure is one line (ConfigError for bad flags, RunError otherwise).

    A process that sends no heartbeat for ``heartbeat_s`` seconds (dead, stopped, cut off) is lost:
    JAX's distributed service then ends the others (SIGABRT; :mod:`cnnzoo.run.supervise` turns that
    into one line)."""
    check_flags(coordinator=coordinator, num_processes=num_processes, process_id=process_id,
                timeout_s=timeout_s, heartbeat_s=heartbeat_s)
    if coordinator is not None and process_id != 0:
        # JAX ends the process with a fatal error (a core dump, no Python exception) when the
        # coordinator does not answer in time: wait for its port here, where the wait can fail in one line.
        timeout_s = _wait_for_port(coordinator, timeout_s)

    import jax

    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id, initialization_timeout=timeout_s,
                                   heartbeat_timeout_seconds=heartbeat_s)
    except Exception as e:  # noqa: BLE001 - JAX raises several kinds; each is one line here
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = f'coordinator {coordinator}' if coordinator else 'the cluster (auto-detected)'
        raise RunError(f'could not join the run through {where} within {timeout_s} s: {text}') from None


def check_flags(*, coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
                timeout_s: int = DEFAULT_TIMEOUT_S, heartbeat_s: int = DEFAULT_HEARTBEAT_S) -> None:
    """The checks of :func:`initialize`'s arguments alone (no JAX): a one-line ConfigError."""
    explicit = (coordinator, num_processes, process_id)
    if any(v is not None for v in explicit) and any(v is None for v in explicit):
        raise ConfigError('--coordinator, --num-processes and --process-id go together (or use '
                          '--distributed alone where JAX detects the cluster)')
    if coordinator is not None and num_processes is not None and process_id is not None:  # all or none
        if not re.fullmatch(r'[^\s:]+:\d{1,5}', coordinator):
            raise ConfigError(f'--coordinator {coordinator!r}: expected HOST:PORT, e.g. 10.0.0.1:1234')
        if num_processes < 1:
            raise ConfigError(f'--num-processes {num_processes}: must be at least 1')
        if not 0 <= process_id < num_processes:
            raise ConfigError(f'--process-id {process_id}: must be in 0..{num_processes - 1} '
                              f'for --num-processes {num_processes}')
    if timeout_s < 1:
        raise ConfigError(f'--distributed-timeout {timeout_s}: must be at least 1 second')
    if heartbeat_s < 1:
        raise ConfigError(f'--heartbeat-timeout {heartbeat_s}: must be at least 1 second')


def _wait_for_port(address: str, timeout_s: float) -> int:
    """Waits until ``address`` (HOST:PORT) accepts connections; returns the whole seconds left."""
    host, port = address.rsplit(':', 1)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=min(2.0, timeout_s)):
                return max(1, int(deadline - time.monotonic()))
        except OSError as e:
            if time.monotonic() + 0.5 >= deadline:
                raise RunError(f'coordinator {address} did not answer within {timeout_s} s ({e.strerror or e}); '
                               'start process 0 (--process-id 0) on that machine, or check the address '
                               'and that the port is open') from None
            time.sleep(0.5)


def is_primary() -> bool:
    """Whether this process writes the run's files (process 0; the only one of a single-process run)."""
    import jax

    return jax.process_index() == 0
