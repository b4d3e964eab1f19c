"""Training and evaluation speed of cnnzoo models in JAX and of their PyTorch twins, side by side.

    python scripts/compare_pytorch.py --models resnet20 --batch-size 128 --steps 20

Every variant trains the same model (its CIFAR adaptation, ``cifar_fields(name)``) at the same
batch size on the same uint8 images held on the device, with the same recipe: SGD with momentum and
weight decay (``default_config().optimizer``), crop-and-flip augmentation and normalisation inside
the step. The JAX variants run cnnzoo's own ``make_train_step`` / ``make_eval_step``; the PyTorch
variants (:mod:`cnnzoo.bench.torch_variants`) do the same work with tensor ops.

How it measures: every variant is built and warmed up first (the first step includes compilation
for ``jax.jit`` and ``torch.compile``); then the timed steps run in rounds, each round giving every
variant a few steps, so that a machine whose load changes during the run slows all variants alike.
Each step is timed on its own, synchronised with the device (``block_until_ready``;
``torch.cuda.synchronize`` on CUDA; CPU PyTorch is synchronous). Images/s is the batch size over
the median step time; p10/p90 are the spread of the per-step rates.

Memory: for JAX, XLA's own account of the compiled train step (arguments + outputs + temporaries,
less what is aliased by donation), available on every backend; for PyTorch on CUDA, the peak of
``torch.cuda.max_memory_allocated`` while the variant warms up, above what was allocated before
it was built. PyTorch on CPU reports none; the process's maximum RSS is in the JSON.

PyTorch is imported only when a ``torch-*`` variant is asked for, so ``import cnnzoo`` stays free
of it.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import resource
import sys
import time
from collections.abc import Sequence

# A JAX GPU backend takes 75% of the device's memory when it starts unless told otherwise, which
# would leave PyTorch, in the same process, a quarter. Only effective before JAX's first use.
os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from cnnzoo import data as data_lib  # noqa: E402
from cnnzoo.bench.environment import loadavg, environment, jax_device_name, write_json_and_markdown  # noqa: E402
from cnnzoo.bench.variants import (  # noqa: E402
    IMAGE_SHAPE,
    LEARNING_RATE,
    MEAN,
    NUM_CLASSES,
    STD,
    Result,
    Variant,
    step_stats,
    synthetic_data,
    timed,
)
from cnnzoo.config import default_config  # noqa: E402
from cnnzoo.errors import first_line  # noqa: E402
from cnnzoo.models import cifar_fields, create_model  # noqa: E402
from cnnzoo.training import TrainState, init_variables, make_eval_step, make_optimizer, make_train_step  # noqa: E402

JAX_VARIANTS = {'jax-fp32': jnp.float32, 'jax-bf16': jnp.bfloat16}

TORCH_VARIANTS = ('torch-eager-fp32', 'torch-eager-bf16-cl', 'torch-compile-fp32', 'torch-compile-bf16-cl')

DEFAULT_VARIANTS = ('jax-fp32', 'jax-bf16', 'torch-eager-fp32', 'torch-eager-bf16-cl', 'torch-compile-fp32')

DEFAULT_MODELS = ('resnet20', 'resnet18', 'vgg16_bn')

REFERENCE_VARIANT = 'torch-eager-fp32'  # the ratio column divides by this variant's images/s


class JaxVariant(Variant):
    """cnnzoo's train and eval steps under ``jax.jit``, data on the default device."""

    def __init__(self, model_name: str, variant: str, *, batch_size: int, images, labels, warmup: int,
                 seed: int = 0):
        dtype = JAX_VARIANTS[variant]
        self.batch_size = batch_size
        self.result = Result(model_name, variant, batch_size=batch_size,
                             precision='float32' if dtype == jnp.float32 else 'bfloat16 compute, float32 params',
                             device=jax_device_name())
        config = default_config()
        model = create_model(model_name, num_classes=NUM_CLASSES, dtype=dtype, **cifar_fields(model_name))
        variables = init_variables(model, jax.random.PRNGKey(seed), IMAGE_SHAPE)
        tx = make_optimizer(config.optimizer, LEARNING_RATE)
        self.state = TrainState.create(apply_fn=model.apply, variables=variables, tx=tx)

        train_images, train_labels = jax.device_put(images), jax.device_put(labels)
        steps_per_epoch = len(images) // batch_size
        self.perm = data_lib.epoch_permutation(seed, 0, len(images))

        def preprocess(rng, x):
            return data_lib.normalize(data_lib.augment(rng, x, 'crop_flip'), MEAN, STD)

        train_step = make_train_step(preprocess=preprocess, learning_rate_fn=lambda step: LEARNING_RATE)
        step_key = jax.random.PRNGKey(seed + 1)

        def step_fn(state, perm):
            batch = data_lib.take_batch(train_images, train_labels, perm, state.step % steps_per_epoch, batch_size)
            return train_step(state, batch, jax.random.fold_in(step_key, state.step))

        eval_step = make_eval_step(preprocess=lambda x: data_lib.normalize(data_lib.to_float(x), MEAN, STD))
        self.eval_batch = {'image': train_images[:batch_size], 'label': train_labels[:batch_size],
                           'mask': jnp.ones((batch_size,), jnp.bool_)}

        t0 = time.perf_counter()
        compiled = jax.jit(step_fn, donate_argnums=0).lower(self.state, self.perm).compile()
        self._train = compiled
        self._eval = jax.jit(eval_step)
        self.metrics = None
        first = time.perf_counter() - t0 + timed(self.train_step)
        rest = sum(timed(self.train_step) for _ in range(max(0, warmup - 1)))
        for _ in range(max(1, warmup)):
            self.eval_step()
        self.result.first_step_s, self.result.warmup_s = first, first + rest
        self.result.memory_bytes, self.result.memory_source = _xla_memory(compiled)

    def train_step(self):
        self.state, self.metrics = self._train(self.state, self.perm)
        jax.block_until_ready((self.state, self.metrics))

    def eval_step(self):
        jax.block_until_ready(self._eval(self.state, self.eval_batch))

    def loss(self):
        return float(self.metrics['loss'])


def _xla_memory(compiled) -> tuple[int | None, str]:
    try:
        m = compiled.memory_analysis()
        total = m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
        return int(total), 'XLA memory analysis of the train step'
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None, ''


def make_variant(model_name: str, variant: str, **kwargs) -> Variant:
    if variant in JAX_VARIANTS:
        return JaxVariant(model_name, variant, **kwargs)
    if variant in TORCH_VARIANTS:
        from cnnzoo.bench.torch_variants import TorchVariant  # torch only for the comparison

        return TorchVariant(model_name, variant, **kwargs)
    raise ValueError(f'unknown variant {variant!r}; choose from {", ".join((*JAX_VARIANTS, *TORCH_VARIANTS))}')


def run_benchmark(models: Sequence[str] = DEFAULT_MODELS, variants: Sequence[str] = DEFAULT_VARIANTS, *,
                  batch_size: int = 128, steps: int = 20, warmup: int = 3, rounds: int = 5,
                  num_images: int | None = None, seed: int = 0, log=None) -> dict:
    """Benchmarks every model under every variant; returns ``{'meta': ..., 'results': [Result]}``.

    The timed steps of one model's variants run interleaved in ``rounds`` rounds (see the module
    docstring). A variant that fails to build or run gets a row with ``error`` set; the others go on.
    """
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    unknown = [v for v in variants if v not in JAX_VARIANTS and v not in TORCH_VARIANTS]
    if unknown:
        raise ValueError(f'unknown variant {", ".join(map(repr, unknown))}; '
                         f'choose from {", ".join((*JAX_VARIANTS, *TORCH_VARIANTS))}')
    for name in models:
        create_model(name, num_classes=NUM_CLASSES, **cifar_fields(name))  # unknown names fail first
    threads = None
    if any(v in TORCH_VARIANTS for v in variants):
        from cnnzoo.torch.ops import configure_threads

        threads = configure_threads()
    meta = environment(batch_size=batch_size, steps=steps, warmup=warmup, rounds=rounds, models=list(models),
                       variants=list(variants), torch_threads=threads)
    images, labels = synthetic_data(num_images or max(8 * batch_size, 1024), seed)
    results = []
    for name in models:
        built = []
        for v in variants:
            log(f'{name} {v}: building and warming up ({warmup} steps)')
            try:
                var = make_variant(name, v, batch_size=batch_size, images=images, labels=labels,
                                   warmup=warmup, seed=seed)
                built.append(var)
                log(f'{name} {v}: first step {var.result.first_step_s:.1f}s, warm-up {var.result.warmup_s:.1f}s')
            except Exception as e:  # noqa: BLE001 - report the failure in the table, go on
                results.append(Result(name, v, batch_size=batch_size, error=first_line(e, typed=True, limit=300)))
                log(f'{name} {v}: FAILED: {first_line(e, typed=True, limit=300)}')
        results.extend(_time_interleaved(built, steps=steps, rounds=rounds, log=log))
    meta['loadavg_after'] = loadavg()
    meta['max_rss_bytes'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if jax.default_backend() != 'cpu':
        meta['jax_memory_stats'] = jax.devices()[0].memory_stats()
    order = {(m, v): i for i, (m, v) in enumerate((m, v) for m in models for v in variants)}
    results.sort(key=lambda r: order[(r.model, r.variant)])
    return {'meta': meta, 'results': results}


def _time_interleaved(built: Sequence[Variant], *, steps: int, rounds: int, log) -> list[Result]:
    rounds = max(1, min(rounds, steps))
    per_round = [steps // rounds + (1 if i < steps % rounds else 0) for i in range(rounds)]
    train = {id(v): [] for v in built}
    evals = {id(v): [] for v in built}
    alive = list(built)
    for phase, store, run in (('train', train, lambda v: v.train_step), ('eval', evals, lambda v: v.eval_step)):
        for n in per_round:
            for var in list(alive):
                try:
                    store[id(var)].extend(timed(run(var)) for _ in range(n))
                except Exception as e:  # noqa: BLE001
                    var.result.error = f'{phase}: {first_line(e, typed=True, limit=300)}'
                    alive.remove(var)
    out = []
    for var in built:
        r = var.result
        r.steps = len(train[id(var)])
        if train[id(var)]:
            r.train_ms, r.train_images_per_sec, r.train_images_per_sec_p10, r.train_images_per_sec_p90 = \
                step_stats(train[id(var)], r.batch_size)
            r.final_loss = var.loss()
        if evals[id(var)]:
            r.eval_ms, r.eval_images_per_sec, _, _ = step_stats(evals[id(var)], r.batch_size)
        if r.train_images_per_sec:
            log(f'{r.model} {r.variant}: {r.train_images_per_sec:.0f} train img/s, '
                f'{r.eval_images_per_sec or 0:.0f} eval img/s')
        out.append(r)
    return out


def _fmt(value, spec: str = '.0f', missing: str = '–') -> str:
    return missing if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def markdown_table(report: dict) -> str:
    """The results as a Markdown table, with the run's device, batch and load above it."""
    meta, results = report['meta'], report['results']
    reference = {r.model: r.train_images_per_sec for r in results
                 if r.variant == REFERENCE_VARIANT and r.train_images_per_sec}
    f = meta['flags']
    lines = [
        f'JAX on {meta["jax_device"]}' + (f'; PyTorch on {meta["torch_device"]}, {f["torch_threads"]}'
                                          if meta.get('torch_device') else ''),
        f'batch {f["batch_size"]}, {f["warmup"]} warm-up + {f["steps"]} timed steps per variant in '
        f'{f["rounds"]} interleaved rounds; load average {meta["loadavg_before"].split(" ")[0]} at start, '
        f'{meta.get("loadavg_after", "n/a").split(" ")[0]} at end',
        '',
        '| model | variant | precision | train img/s (median) | p10–p90 | ms/step | vs torch eager fp32 '
        '| first step (s) | eval img/s | memory (MiB) |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in results:
        if r.error:
            lines.append(f'| {r.model} | {r.variant} | {r.precision or "–"} | failed: {r.error.replace("|", "/")} '
                         f'| | | | | | |')
            continue
        ratio = (r.train_images_per_sec / reference[r.model]) if r.model in reference else None
        mem = _fmt(r.memory_bytes / 2**20 if r.memory_bytes else None, '.0f', 'n/a')
        lines.append(
            f'| {r.model} | {r.variant} | {r.precision} | **{_fmt(r.train_images_per_sec)}** '
            f'| {_fmt(r.train_images_per_sec_p10)}–{_fmt(r.train_images_per_sec_p90)} '
            f'| {_fmt(r.train_ms["median"] if r.train_ms else None, ".1f")} | {_fmt(ratio, ".2f")}x '
            f'| {_fmt(r.first_step_s, ".1f")} | {_fmt(r.eval_images_per_sec)} | {mem} |')
    return '\n'.join(lines)


def write_report(report: dict, prefix: str) -> tuple[str, str]:
    """Writes ``<prefix>.json`` and ``<prefix>.md``; returns their paths."""
    body = {'meta': report['meta'], 'results': [dataclasses.asdict(r) for r in report['results']]}
    return write_json_and_markdown(prefix, body, markdown_table(report))


def default_prefix() -> str:
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    return os.path.join('results', jax.default_backend(), f'compare_pytorch_{stamp}')


def compare(models: Sequence[str] = DEFAULT_MODELS, variants: Sequence[str] = DEFAULT_VARIANTS, *,
            out: str | None = None, **kwargs) -> dict:
    """``run_benchmark``, then the table on stdout and ``<out>.json`` / ``<out>.md`` (see ``default_prefix``)."""
    report = run_benchmark(models, variants, **kwargs)
    json_path, md_path = write_report(report, out or default_prefix())
    print(markdown_table(report))
    print(f'\nwritten: {json_path}, {md_path}', file=sys.stderr)
    return report
