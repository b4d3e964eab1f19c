"""How fast the streaming path makes training batches, and how fast a train step takes them.

    cnnzoo input-benchmark --config experiments/resnet50_imagenet.py --workers 1,2 --batches 20 \
        --config.data.source=folder --config.data.folder=~/imagenet [--train-step]

For each worker count, the training iterator of :mod:`cnnzoo.data.streaming` (decode, the preset's
host transform, batching in grain worker processes) is run alone, on the host: after ``warmup``
batches (the workers' start), ``batches`` batches are timed. Each reading process (the main one
without workers, else each worker) decodes in as many threads as share out the cores
(:func:`cnnzoo.data.streaming.read_options`), so the rate is divided by the cores the reading may
use, ``min(cores, processes x threads)``, for the images/s one core sustains, and by the worker
count for the images/s per worker. ``--train-step`` also times the config's train step on synthetic
batches of the same shape held on the device: the rate the step consumes images at, the ceiling
the input must keep up with. ``cores needed = step images/s / the best images/s per core``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np

from cnnzoo.bench.environment import loadavg


def input_rates(stream, batch_size: int, workers: list[int], *, batches: int, warmup: int, log=print) -> list[dict]:
    """Host-side images/s of ``stream``'s training batches for each worker count."""
    from cnnzoo.data.streaming import TrainBatches, default_workers, read_options

    rows = []
    for count in workers:
        cores = min(default_workers(), max(count, 1) * read_options(count).num_threads)
        it = TrainBatches(dataclasses.replace(stream, workers=count), batch_size, 0, None)
        t0 = time.perf_counter()
        for _ in range(warmup):
            next(it)
        started = time.perf_counter()
        for _ in range(batches):
            next(it)
        seconds = time.perf_counter() - started
        it.close()
        rate = batches * batch_size / seconds
        rows.append({'workers': count, 'images_per_sec': rate, 'images_per_sec_per_worker': rate / max(count, 1),
                     'reading_cores': cores, 'images_per_sec_per_core': rate / cores,
                     'warmup_seconds': started - t0, 'timed_batches': batches, 'batch_size': batch_size})
        log(f'{count} worker(s): {rate:.1f} images/s ({rate / max(count, 1):.1f} per worker, {rate / cores:.1f} per '
            f'core of the {cores} reading), warm-up {started - t0:.1f} s')
    return rows


def train_step_rate(config, image_size: int, *, steps: int, log=print) -> dict:
    """Images/s of ``config``'s train step on synthetic uint8 batches already on the device."""
    import jax

    from cnnzoo.data import normalize, to_float
    from cnnzoo.models import create_model
    from cnnzoo.rngs import step_stream
    from cnnzoo.training import (
        TrainState,
        compute_dtype,
        init_variables,
        make_optimizer,
        make_train_step,
    )

    t = config.training
    fields = {k: v for k, v in config.model.items() if k != 'name'}
    model = create_model(config.model.name, num_classes=1000, dtype=compute_dtype(t.dtype), **fields)
    variables = init_variables(model, jax.random.PRNGKey(0), (image_size, image_size, 3))
    state = TrainState.create(apply_fn=model.apply, variables=variables,
                              tx=make_optimizer(config.optimizer, config.optimizer.learning_rate))
    step = jax.jit(make_train_step(preprocess=lambda rng, x: normalize(to_float(x), (0.5,) * 3, (0.25,) * 3),
                                   learning_rate_fn=lambda s: config.optimizer.learning_rate), donate_argnums=0)
    rng = np.random.default_rng(0)
    batch = {'image': jax.device_put(rng.integers(0, 255, (t.batch_size, image_size, image_size, 3), dtype=np.uint8)),
             'label': jax.device_put(rng.integers(0, 1000, t.batch_size).astype(np.int32))}
    key = step_stream(0)
    t0 = time.perf_counter()
    state, metrics = step(state, batch, key)
    jax.block_until_ready(metrics)
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        state, metrics = step(state, batch, jax.random.fold_in(key, i))
    jax.block_until_ready(metrics)
    rate = steps * t.batch_size / (time.perf_counter() - t0)
    log(f'train step ({config.model.name}, batch {t.batch_size}, {image_size}x{image_size}, {t.dtype}, '
        f'{jax.devices()[0].platform}): {rate:.1f} images/s (first step {compile_seconds:.1f} s)')
    return {'model': config.model.name, 'batch_size': t.batch_size, 'image_size': image_size, 'dtype': t.dtype,
            'device': str(jax.devices()[0].device_kind), 'images_per_sec': rate, 'first_step_seconds': compile_seconds,
            'timed_steps': steps}


def run(config, *, workers: list[int], batches: int, warmup: int, train_step: bool, steps: int,
        out: str | None) -> dict:
    """Times the streamed input of ``config`` for each worker count (and, with ``train_step``, the
    training step alone, to say how many cores the input needs to keep up); writes the report as
    JSON to ``out`` when given and returns it."""
    from cnnzoo.run.setup import open_data
    from cnnzoo.run.validation import check_config

    check_config(config)
    stream = open_data(config)
    if not hasattr(stream, 'train_dataset'):
        from cnnzoo.config import ConfigError

        raise ConfigError('the input benchmark measures the streaming path: use --config.data.loader=grain')
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    report: dict[str, Any] = {'meta': {'command': ' '.join(sys.argv), 'loadavg_before': loadavg(), 'cpus': os.cpu_count(),
                       'cpu': platform.processor() or platform.machine(), 'data': stream.name,
                       'preset': stream.preset, 'image_size': stream.image_size, 'train_images': stream.num_train}}
    log(f'{stream.name}: {stream.num_train} training images, preset {stream.preset} at {stream.image_size}, '
        f'batch {config.training.batch_size}; load average {report["meta"]["loadavg_before"]}')
    report['input'] = input_rates(stream, config.training.batch_size, workers, batches=batches, warmup=warmup, log=log)
    if train_step:
        step = train_step_rate(config, stream.image_size, steps=steps, log=log)
        per_core = max(r['images_per_sec_per_core'] for r in report['input'])
        step['cores_to_keep_up'] = step['images_per_sec'] / per_core
        log(f'cores the input needs to keep up with this step: {step["cores_to_keep_up"]:.2f}')
        report['train_step'] = step
    report['meta']['loadavg_after'] = loadavg()
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(report, f, indent=2)
        log(f'written: {out}')
    return report
