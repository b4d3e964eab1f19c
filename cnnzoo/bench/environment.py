"""Where and how a measurement was made: the device, the versions, the load, the command; and the
``.json`` / ``.md`` pair every comparison writes."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from typing import Any

import jax
import numpy as np


def loadavg() -> str:
    """The first three fields of /proc/loadavg ('' where there is none), to record beside a timing."""
    try:
        with open('/proc/loadavg') as f:
            return f.read().strip()
    except OSError:
        return 'n/a'


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


# The instruction-set flags that decide how fast a CPU runs these benchmarks; the tables name them.
REPORTED_CPU_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_tile', 'amx_bf16')


def cpu_flags() -> set[str]:
    """The flags of the first processor in ``/proc/cpuinfo`` (empty where there is none to read)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_native_on_cpu(flags: set[str] | None = None) -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX-BF16). Without either,
    PyTorch's and XLA's bfloat16 kernels convert to float32 and back, so a bfloat16 figure measures
    that emulation, not the framework's bfloat16 path."""
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {'avx512_bf16', 'amx_bf16'})


def jax_device_name() -> str:
    """'cpu: <model name>' or '<platform>: <device kind>' of JAX's first device."""
    device = jax.devices()[0]
    return f'cpu: {_cpu_name()}' if device.platform == 'cpu' else f'{device.platform}: {device.device_kind}'


def environment(**flags) -> dict:
    """Where and how a run happened: devices, versions, thread counts, load, the command."""
    import flax
    import jaxlib
    import optax

    meta: dict[str, Any] = {
        'date': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
        'command': ' '.join([os.path.basename(sys.executable), *sys.argv]),
        'flags': flags,
        'loadavg_before': loadavg(),
        'cpu': _cpu_name(), 'cpu_count': os.cpu_count(), 'cpus_usable': len(os.sched_getaffinity(0)),
        'cpu_flags': sorted(cpu_flags() & set(REPORTED_CPU_FLAGS)), 'cpu_bf16_native': bf16_native_on_cpu(),
        'jax_backend': jax.default_backend(), 'jax_device': jax_device_name(),
        'jax_device_count': jax.device_count(),
        'versions': {'python': platform.python_version(), 'jax': jax.__version__, 'jaxlib': jaxlib.__version__,
                     'flax': flax.__version__, 'optax': optax.__version__, 'numpy': np.__version__},
        'XLA_FLAGS': os.environ.get('XLA_FLAGS', ''),
    }
    if flags.get('torch_threads'):
        import torch

        meta['versions']['torch'] = torch.__version__
        meta['torch_device'] = (f'cuda: {torch.cuda.get_device_name()}' if torch.cuda.is_available()
                                else f'cpu: {_cpu_name()}')
    return meta


def write_json_and_markdown(prefix: str, body: dict, table: str) -> tuple[str, str]:
    """``<prefix>.json`` (``body``) and ``<prefix>.md`` (``table`` under the command that made it)."""
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    json_path, md_path = f'{prefix}.json', f'{prefix}.md'
    with open(json_path, 'w') as f:
        json.dump(body, f, indent=2, default=str)
        f.write('\n')
    with open(md_path, 'w') as f:
        f.write(f'<!-- {body["meta"]["command"]} -->\n{table}\n')
    return json_path, md_path
