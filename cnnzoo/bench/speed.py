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

FLOPs and MFU: XLA's cost analysis of the model's JAX float32 train step, lowered but not yet
optimised (so cuDNN's custom calls do not hide the convolutions), counts the floating-point
operations of one step: augmentation, forward, backward and the optimizer update. Every variant of
that model does the same work, so each row's MFU is that count over its median step time, over the
peak rate passed as ``peak_flops`` (the caller says which figure: the GPU stage divides by the
bfloat16 matrix rate measured on the H200, float32 rows included). Without a peak there is no MFU.

bfloat16 on a CPU: without AVX512-BF16 or AMX (``/proc/cpuinfo``), PyTorch and XLA convert to
float32 and back around each kernel; such rows are marked in the table and in their ``note``, since
the figure measures the emulation rather than the framework.

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

import jax
import jax.numpy as jnp

from cnnzoo import data as data_lib
from cnnzoo.bench.environment import (
    REPORTED_CPU_FLAGS,
    bf16_native_on_cpu,
    environment,
    jax_device_name,
    loadavg,
    write_json_and_markdown,
)
from cnnzoo.bench.names import DEFAULT_MODELS, DEFAULT_VARIANTS, JAX_VARIANT_NAMES, TORCH_VARIANTS
from cnnzoo.bench.variants import (
    LEARNING_RATE,
    MEAN,
    STD,
    Result,
    Variant,
    model_fields,
    step_stats,
    synthetic_data,
    timed,
)
from cnnzoo.config import default_config
from cnnzoo.errors import first_line
from cnnzoo.models import create_model
from cnnzoo.training import (
    TrainState,
    init_variables,
    make_eval_step,
    make_optimizer,
    make_train_step,
)

JAX_VARIANTS = dict(zip(JAX_VARIANT_NAMES, (jnp.float32, jnp.bfloat16), strict=True))

REFERENCE_VARIANT = 'torch-eager-fp32'  # the ratio column divides by this variant's images/s

EMULATED_BF16 = 'bfloat16 emulated: this CPU has neither AVX512-BF16 nor AMX-BF16'


def expected_first_step(variant: str, backend: str) -> str:
    """What to expect of a variant's first step before it starts (measured on the project's machines:
    BENCHMARKS.md), so that a long silence is announced rather than suffered."""
    if variant.startswith('torch-compile'):
        return ('torch.compile compiles the step first: about 100 s on a 2-core CPU for resnet20, '
                'longer for bigger models' if backend == 'cpu' else 'torch.compile compiles the step first: '
                'about 30-90 s on a GPU')
    if variant in JAX_VARIANTS:
        return 'jax.jit compiles the step first: about 10-60 s on a 2-core CPU' if backend == 'cpu' else \
            'jax.jit compiles the step first: about 10-60 s'
    return 'eager: no compilation, a few seconds'


def _flops(lowered) -> float | None:
    """Floating-point operations per call from XLA's cost analysis of ``lowered`` (None if unknown)."""
    try:
        analysis = lowered.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    flops = (analysis or {}).get('flops')
    return float(flops) if flops and flops > 0 else None


class JaxVariant(Variant):
    """cnnzoo's train and eval steps under ``jax.jit``, data on the default device."""

    def __init__(self, model_name: str, variant: str, *, batch_size: int, images, labels, warmup: int,
                 seed: int = 0):
        dtype = JAX_VARIANTS[variant]
        self.batch_size = batch_size
        image_size = images.shape[1]
        self.result = Result(model_name, variant, batch_size=batch_size, image_size=image_size,
                             precision='float32' if dtype == jnp.float32 else 'bfloat16 compute, float32 params',
                             device=jax_device_name())
        config = default_config()
        num_classes, fields = model_fields(model_name, image_size)
        model = create_model(model_name, num_classes=num_classes, dtype=dtype, **fields)
        variables = init_variables(model, jax.random.PRNGKey(seed), images.shape[1:])
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
        lowered = jax.jit(step_fn, donate_argnums=0).lower(self.state, self.perm)
        self.result.flops_per_step = _flops(lowered)
        compiled = lowered.compile()
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
    """A warmed-up variant of either framework by its name (JAX_VARIANTS or TORCH_VARIANTS)."""
    if variant in JAX_VARIANTS:
        return JaxVariant(model_name, variant, **kwargs)
    if variant in TORCH_VARIANTS:
        from cnnzoo.bench.torch_variants import TorchVariant  # torch only for the comparison

        return TorchVariant(model_name, variant, **kwargs)
    raise ValueError(f'unknown variant {variant!r}; choose from {", ".join((*JAX_VARIANTS, *TORCH_VARIANTS))}')


def run_benchmark(models: Sequence[str] = DEFAULT_MODELS, variants: Sequence[str] = DEFAULT_VARIANTS, *,
                  batch_size: int = 128, steps: int = 20, warmup: int = 3, rounds: int = 5,
                  num_images: int | None = None, seed: int = 0, log=None, image_size: int = 32,
                  peak_flops: float | None = None, peak_name: str = '') -> dict:
    """Benchmarks every model under every variant; returns ``{'meta': ..., 'results': [Result]}``.

    The timed steps of one model's variants run interleaved in ``rounds`` rounds (see the module
    docstring). A variant that fails to build or run gets a row with ``error`` set; the others go on.
    ``image_size`` above 63 benchmarks the registry's ImageNet form of each model (``model_fields``);
    ``peak_flops`` (FLOP/s, described by ``peak_name``) adds each row's MFU.
    """
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    unknown = [v for v in variants if v not in JAX_VARIANTS and v not in TORCH_VARIANTS]
    if unknown:
        raise ValueError(f'unknown variant {", ".join(map(repr, unknown))}; '
                         f'choose from {", ".join((*JAX_VARIANTS, *TORCH_VARIANTS))}')
    for name in models:
        num_classes, fields = model_fields(name, image_size)
        create_model(name, num_classes=num_classes, **fields)  # unknown names fail first
    threads = None
    if any(v in TORCH_VARIANTS for v in variants):
        from cnnzoo.torch.ops import configure_threads

        threads = configure_threads()
    meta = environment(batch_size=batch_size, steps=steps, warmup=warmup, rounds=rounds, models=list(models),
                       variants=list(variants), torch_threads=threads, image_size=image_size,
                       peak_flops=peak_flops, peak_name=peak_name)
    emulated = _emulated_bf16(variants, meta)
    if emulated:
        log(f'note: {", ".join(emulated)} will run {EMULATED_BF16}; their figures measure the emulation '
            '(marked in the table)')
    images, labels = synthetic_data(num_images or max(8 * batch_size, 1024), seed, image_size)
    results = []
    for name in models:
        built = []
        for i, v in enumerate(variants, 1):
            backend = 'cpu' if v in TORCH_VARIANTS and meta.get('torch_device', '').startswith('cpu') else \
                jax.default_backend() if v in JAX_VARIANTS else 'gpu'
            log(f'{name} {v} [{i}/{len(variants)}]: building and warming up ({warmup} steps); '
                f'{expected_first_step(v, backend)}')
            try:
                var = make_variant(name, v, batch_size=batch_size, images=images, labels=labels,
                                   warmup=warmup, seed=seed)
                built.append(var)
                log(f'{name} {v}: first step {var.result.first_step_s:.1f}s, warm-up {var.result.warmup_s:.1f}s')
            except Exception as e:  # noqa: BLE001 - report the failure in the table, go on
                results.append(Result(name, v, batch_size=batch_size, image_size=image_size,
                                      error=first_line(e, typed=True, limit=300)))
                log(f'{name} {v}: FAILED: {first_line(e, typed=True, limit=300)}')
        per_step = sum((v.result.warmup_s - v.result.first_step_s) / max(1, warmup - 1) if warmup > 1
                       else v.result.first_step_s for v in built)
        if built:
            log(f'{name}: timing {steps} train and {steps} eval steps of {len(built)} variants in {rounds} '
                f'interleaved rounds: about {format_seconds(1.5 * steps * per_step)} '
                '(from the warm-up steps)')
        model_results = _time_interleaved(built, steps=steps, rounds=rounds, log=log)
        _add_flops(model_results, peak_flops)
        for r in model_results:
            if r.variant in emulated:
                r.note = EMULATED_BF16
        results.extend(model_results)
    meta['loadavg_after'] = loadavg()
    meta['max_rss_bytes'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if jax.default_backend() != 'cpu':
        meta['jax_memory_stats'] = jax.devices()[0].memory_stats()
    order = {(m, v): i for i, (m, v) in enumerate((m, v) for m in models for v in variants)}
    results.sort(key=lambda r: order[(r.model, r.variant)])
    return {'meta': meta, 'results': results}


def format_seconds(seconds: float) -> str:
    """``'42 s'`` or ``'3 min 5 s'``."""
    seconds = int(round(seconds))
    return f'{seconds} s' if seconds < 60 else f'{seconds // 60} min {seconds % 60} s'


def _emulated_bf16(variants: Sequence[str], meta: dict) -> list[str]:
    """The bfloat16 variants that run on a CPU without bfloat16 hardware."""
    if bf16_native_on_cpu():
        return []
    on_cpu = {v for v in variants if v in JAX_VARIANTS and jax.default_backend() == 'cpu'}
    on_cpu |= {v for v in variants if v in TORCH_VARIANTS and meta.get('torch_device', '').startswith('cpu')}
    return [v for v in variants if v in on_cpu and 'bf16' in v]


def _add_flops(results: Sequence[Result], peak_flops: float | None) -> None:
    """Gives every row of one model the FLOPs of its JAX float32 step (else of any JAX step) and,
    with a peak, its MFU."""
    counted = {r.variant: r.flops_per_step for r in results if r.flops_per_step}
    flops = counted.get('jax-fp32') or next(iter(counted.values()), None)
    for r in results:
        r.flops_per_step = flops
        if flops and peak_flops and r.train_ms:
            r.mfu = flops / (r.train_ms['median'] / 1000.0) / peak_flops


def _time_interleaved(built: Sequence[Variant], *, steps: int, rounds: int, log) -> list[Result]:
    rounds = max(1, min(rounds, steps))
    per_round = [steps // rounds + (1 if i < steps % rounds else 0) for i in range(rounds)]
    train: dict[int, list[float]] = {id(v): [] for v in built}
    evals: dict[int, list[float]] = {id(v): [] for v in built}
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
    mfu = bool(f.get('peak_flops'))
    sizes = sorted({r.image_size for r in results})
    lines = [
        f'JAX on {meta["jax_device"]}' + (f'; PyTorch on {meta["torch_device"]}, {f["torch_threads"]}'
                                          if meta.get('torch_device') else ''),
        f'CPU flags: {", ".join(meta.get("cpu_flags", [])) or "none of " + ", ".join(REPORTED_CPU_FLAGS)}',
        (f'batch {f["batch_size"]}, {"x".join(map(str, sizes[:1] * 2))} images, {f["warmup"]} warm-up + '
         f'{f["steps"]} timed steps per variant in '
         f'{f["rounds"]} interleaved rounds; load average {meta["loadavg_before"].split(" ")[0]} at start, '
         f'{meta.get("loadavg_after", "n/a").split(" ")[0]} at end'),
        '',
        '| model | variant | precision | train img/s (median) | p10–p90 | ms/step | vs torch eager fp32 '
        '| first step (s) | eval img/s | memory (MiB) |' + (' MFU |' if mfu else ''),
        '|---|---|---|---|---|---|---|---|---|---|' + ('---|' if mfu else ''),
    ]
    marked = False
    for r in results:
        if r.error:
            lines.append(f'| {r.model} | {r.variant} | {r.precision or "–"} | failed: {r.error.replace("|", "/")} '
                         f'| | | | | | |' + (' |' if mfu else ''))
            continue
        mark = ' †' if r.note == EMULATED_BF16 else ''
        marked = marked or bool(mark)
        ratio = (r.train_images_per_sec / reference[r.model]) if r.model in reference else None
        mem = _fmt(r.memory_bytes / 2**20 if r.memory_bytes else None, '.0f', 'n/a')
        lines.append(
            f'| {r.model} | {r.variant}{mark} | {r.precision} | **{_fmt(r.train_images_per_sec)}** '
            f'| {_fmt(r.train_images_per_sec_p10)}–{_fmt(r.train_images_per_sec_p90)} '
            f'| {_fmt(r.train_ms["median"] if r.train_ms else None, ".1f")} | {_fmt(ratio, ".2f")}x '
            f'| {_fmt(r.first_step_s, ".1f")} | {_fmt(r.eval_images_per_sec)} | {mem} |'
            + (f' {_fmt(100 * r.mfu if r.mfu else None, ".1f")}% |' if mfu else ''))
    if marked:
        lines += ['', (f'† {EMULATED_BF16}: PyTorch and XLA convert to float32 and back around each kernel, so '
                       'the figure measures that emulation, not the framework\'s bfloat16 path.')]
    if mfu:
        lines += ['', (f'MFU: XLA\'s cost analysis of the JAX float32 train step (FLOPs per step, the same for '
                       f'every variant of a model) over the median step time, over {f["peak_flops"] / 1e12:.0f} '
                       f'TFLOP/s ({f.get("peak_name") or "the peak given"}).')]
    return '\n'.join(lines)


def write_report(report: dict, prefix: str) -> tuple[str, str]:
    """Writes ``<prefix>.json`` and ``<prefix>.md``; returns their paths."""
    body = {'meta': report['meta'], 'results': [dataclasses.asdict(r) for r in report['results']]}
    return write_json_and_markdown(prefix, body, markdown_table(report))


def default_prefix() -> str:
    """results/<backend>/compare_pytorch_<date-time>: where a comparison is written by default."""
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
