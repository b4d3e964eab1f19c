r"""Same model, same recipe, both frameworks: test accuracy and wall time side by side.

    python scripts/compare_accuracy.py --config experiments/resnet20_cifar10.py \
        --config.training.num_epochs=3 --out results/cpu/accuracy_resnet20

The JAX run is cnnzoo's own training loop (:func:`cnnzoo.run.loop.train_and_evaluate`, in a fresh
workdir); the PyTorch run trains the model's twin with the same initial weights, batches,
augmentation draws, optimizer, schedule and evaluation (:mod:`cnnzoo.torch.recipe`). They run one
after the other in one process, on the same device, with PyTorch given one thread per usable CPU
(as XLA's CPU pool); ``/proc/loadavg`` is recorded around each. Wall time counts from the first
training step to the end of the last evaluation, compilation included, as the loop reports it.

Writes ``<out>.json`` (environment, config, every evaluation of both runs) and ``<out>.md`` (the
table: model, framework, seconds, accuracy).
"""

from __future__ import annotations

import jax
import numpy as np

from cnnzoo.bench.environment import environment, loadavg, write_json_and_markdown
from cnnzoo.errors import ConfigError
from cnnzoo.run.workdir import has_checkpoint

FRAMEWORKS = ('jax', 'torch')


def relative_difference(a: dict, b: dict) -> float:
    """max over leaves of ||a - b|| / ||b||: how far apart two sets of variables ended."""
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return max(float(np.linalg.norm(np.asarray(x, np.float64) - np.asarray(y, np.float64))
                   / max(np.linalg.norm(np.asarray(y, np.float64)), 1e-12))
               for x, y in zip(leaves_a, leaves_b, strict=True))


def compare_accuracy(config, *, workdir: str, frameworks=FRAMEWORKS, log=print) -> dict:
    """Trains ``config`` with each of ``frameworks`` in turn; returns the report (see ``write``)."""
    from cnnzoo.run.loop import train_and_evaluate
    from cnnzoo.run.setup import build
    from cnnzoo.torch.ops import configure_threads
    from cnnzoo.torch.recipe import check_torch_recipe, train_torch

    unknown = [f for f in frameworks if f not in FRAMEWORKS]
    if unknown or not frameworks:
        raise ValueError(f'frameworks must be from {", ".join(FRAMEWORKS)}, got {", ".join(frameworks) or "none"}')
    if 'torch' in frameworks:
        check_torch_recipe(config)  # before either framework trains: lars, say, has no PyTorch twin
    if 'jax' in frameworks and has_checkpoint(workdir):
        raise ConfigError(f'workdir {workdir} already holds a run; the comparison needs a fresh one')
    threads = configure_threads()
    meta = environment(torch_threads=threads, workdir=workdir, frameworks=list(frameworks))
    runs, finals = {}, {}
    for framework in frameworks:
        load_before = loadavg()
        log(f'== {framework}: {config.model.name}, load {load_before}')
        if framework == 'jax':
            summary = train_and_evaluate(config, workdir)
            finals['jax'] = jax.device_get(summary['state'].variables())
            evals = [{k: r[k] for k in ('step', 'epoch', 'loss', 'accuracy')} for r in summary['evals']]
        else:
            summary = train_torch(config, build(config), log=log)
            finals['torch'] = summary['run'].variables()
            evals = summary['evals']
        runs[framework] = {
            'wall_seconds': summary['wall_seconds'], 'train_images_per_sec': summary['train_images_per_sec'],
            'final_accuracy': summary['final']['accuracy'], 'best_accuracy': summary['best_accuracy'],
            'evals': evals, 'loadavg_before': load_before, 'loadavg_after': loadavg(),
        }
    meta['loadavg_after'] = loadavg()
    report = {'meta': meta, 'config': config.to_dict(), 'runs': runs}
    if len(finals) == 2:
        report['final_parameter_difference'] = relative_difference(finals['torch']['params'],
                                                                   finals['jax']['params'])
    return report


def markdown(report: dict) -> str:
    """The comparison as Markdown: the setup, then each framework's evaluations side by side."""
    meta, config, runs = report['meta'], report['config'], report['runs']
    t = config['training']
    steps = next(iter(runs.values()))['evals'][-1]['step']
    lines = [
        f'JAX on {meta["jax_device"]}; PyTorch on {meta.get("torch_device", "n/a")}, {meta["flags"]["torch_threads"]}',
        (f'{config["model"]["name"]} ({", ".join(f"{k}={v}" for k, v in config["model"].items() if k != "name") or "registry defaults"}), '
         f'{steps} steps of batch {t["batch_size"]}, {t["dtype"]}, optimizer {config["optimizer"]["name"]} '
         f'lr {config["optimizer"]["learning_rate"]}, schedule {config["schedule"]["name"]}, '
         f'augment {config["data"]["augment"]}, seed {config["seed"]}'),
        '',
        '| model | framework | seconds | train img/s | test accuracy (final) | best | load at start → end |',
        '|---|---|---|---|---|---|---|',
    ]
    for framework, r in runs.items():
        rate = f'{r["train_images_per_sec"]:.0f}' if r['train_images_per_sec'] else '–'
        lines.append(f'| {config["model"]["name"]} | {framework} | {r["wall_seconds"]:.0f} | {rate} '
                     f'| **{100 * r["final_accuracy"]:.2f}%** | {100 * r["best_accuracy"]:.2f}% '
                     f'| {r["loadavg_before"].split()[0]} → {r["loadavg_after"].split()[0]} |')
    if len(runs) > 1:
        names = list(runs)
        lines += ['', '| step | epoch | ' + ' | '.join(f'{n} accuracy' for n in names) + ' |',
                  '|---|---|' + '---|' * len(names)]
        by_step = [{e['step']: e for e in runs[n]['evals']} for n in names]
        for step in sorted(set.intersection(*(set(b) for b in by_step))):
            cells = ' | '.join(f'{100 * b[step]["accuracy"]:.2f}%' for b in by_step)
            lines.append(f'| {step} | {by_step[0][step]["epoch"]:.2f} | {cells} |')
    if 'final_parameter_difference' in report:
        lines += ['', (f'Final parameters, PyTorch against JAX: max over tensors of ||a - b|| / ||b|| = '
                       f'{report["final_parameter_difference"]:.3g}')]
    return '\n'.join(lines)


def write(report: dict, prefix: str) -> tuple[str, str]:
    """Writes ``<prefix>.json`` (the whole report) and ``<prefix>.md`` (the tables)."""
    return write_json_and_markdown(prefix, report, markdown(report))
