"""The GPU stages of issues 19 and 28, one per call, each bounded to fit one turn on the GPU machine.

    python benchmarks/gpu/stages.py STAGE OUTDIR --archive cifar-10-python.tar.gz [--smoke]

scripts/gpu/run.sh runs this after installing the project and writing the archive (read
scripts/gpu/README.md); ``--smoke`` runs a few steps of tiny sizes, on any device, for the test
suite. STAGE is one of:

- ``speed``: cnnzoo.bench.speed at batch 512 on 32x32 (ResNet-18, ResNet-56, VGG-16-BN, GoogLeNet,
  AlexNet, their CIFAR forms) and ResNet-50 at 224x224, batch 256: JAX float32 and bfloat16 against
  PyTorch eager float32, AMP bfloat16 + channels_last, and torch.compile (bfloat16, channels_last)
  for ResNet-18 and ResNet-50 only, to fit the turn. MFU over H200_BF16_PEAK.
- ``tta``: experiments/resnet18_tta94.py through ``cnnzoo train``; the wall time from this
  process's start (imports, data, compilation included) to the first evaluation at or above 94%,
  read by watching metrics.jsonl as the run writes it; then the same recipe in PyTorch
  (``compare-accuracy --frameworks torch``) if the turn has room.
- ``seeds``: ResNet-20 with K = 1, 2, 4, 8, 16 seeds vmapped in one program (``training.num_seeds``):
  images/s per seed against the one-seed run, and the K past which doubling adds under 10%.
- ``he2016``: He et al.'s recipe (experiments/he2016_cifar10.py, 64k steps of batch 128) for
  resnet20 and plain20 with vmapped seeds, through ``cnnzoo sweep``, stopped by SIGTERM (with a
  checkpoint) when the turn's budget is spent. The sweep starts from the finished runs committed
  under results/studies/he2016_gpu (config.json + metrics.jsonl: the sweep counts them as done) and
  from the unfinished runs' checkpoints that the previous turn brought back, when carried
  (``--resume``). It leaves he2016_runs.tar.gz (every run's config.json and metrics.jsonl, the
  manifest, the report) to unpack under results/studies/he2016_gpu, and he2016_resume.tar.gz (the
  unfinished runs' latest checkpoint) to carry into the next turn.
- ``resume``: what "bitwise after any kill" means on the GPU (issue 28). ResNet-20, batch 128, 1000
  steps, through ``cnnzoo train`` in processes of its own: the whole run; the same run SIGKILLed
  once step 500 is logged (after the checkpoint of step 400 is complete) and run again; the same run
  SIGTERMed once step 700 is logged and run again. Three variants (:data:`RESUME_VARIANTS`): without
  ``training.deterministic``, every process compiling, and so autotuning, afresh (``plain``); without
  it, the stopped runs' processes loading the whole run's programs from JAX's persistent cache
  (``cached``: the default setup, on one machine); with it (``deterministic``). Each resumed run's
  final state is compared bitwise with the whole run's of the same switch (and where not equal: how
  many arrays differ, the largest difference, the first step where metrics.jsonl parts). The two
  whole runs train alone on the GPU, one after the other, and give the switch's speed cost (steps/s,
  the median logging window); the stopped runs train at the same time. Last, whether a model with
  max pooling (resnet20 with the ImageNet stem) compiles under the switch. ``resume_files.tar.gz``
  holds every process's log and every run's config.json and metrics.jsonl.

Each stage writes ``<stage>.json`` and ``<stage>.md`` in OUTDIR (run.sh adds the log and the
environment); everything else it makes goes into one ``<stage>_files.tar.gz``.
"""

import time

STARTED = time.time()  # before any import: the tta stage counts from here

import argparse  # noqa: E402
import contextlib  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAGES = ('speed', 'tta', 'seeds', 'he2016', 'resume')
BUDGET_SECONDS = 300  # each stage's own work; run.sh's start-up and the archive take the rest of 6 min

# The divisor of MFU: a large bfloat16 matrix product (8192^3, random data) ran at 769-798 TFLOP/s
# on this workplace's H200 (.library/device/KINDS.md); the datasheet's dense rate is about 990.
H200_BF16_PEAK = 790e12
PEAK_NAME = 'bfloat16 8192^3 matrix product measured on the H200 (769-798 TFLOP/s); datasheet dense ~990'

TARGET_ACCURACY = 0.94
STUDY_DIR = os.path.join(ROOT, 'results', 'studies', 'he2016_gpu')


def log(text: str) -> None:
    print(f'[{time.time() - STARTED:6.1f}s] {text}', flush=True)


def data_flags(args) -> list[str]:
    return ['--config.data.source=archive', f'--config.data.archive={args.archive}',
            f'--config.data.data_dir={os.path.join(args.work, "data")}', '--config.training.progress_bar=False']


@contextlib.contextmanager
def deadline(seconds: float):
    """SIGTERM to this process after ``seconds``: a run or sweep stops at a step boundary with a
    checkpoint, as a scheduler's stop would. Yields a dict whose 'fired' says whether it did."""
    state = {'fired': False}

    def fire():
        state['fired'] = True
        log('budget spent: SIGTERM to stop at the next step boundary')
        os.kill(os.getpid(), signal.SIGTERM)

    timer = threading.Timer(max(1.0, seconds), fire)
    timer.daemon = True
    timer.start()
    try:
        yield state
    finally:
        timer.cancel()


def read_records(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_outputs(out: str, stage: str, body: dict, table: str) -> None:
    body = {'stage': stage, 'command': ' '.join([os.path.basename(sys.executable), *sys.argv]),
            'seconds_since_start': time.time() - STARTED, **body}
    with open(os.path.join(out, f'{stage}.json'), 'w') as f:
        json.dump(body, f, indent=2, default=str)
        f.write('\n')
    with open(os.path.join(out, f'{stage}.md'), 'w') as f:
        f.write(f'<!-- {body["command"]} -->\n{table}\n')
    print(table, flush=True)


def tar_into(out: str, name: str, base: str, paths) -> str | None:
    """``paths`` (relative to ``base``) into ``out/name``; None when there is nothing to pack."""
    paths = [p for p in paths if os.path.exists(os.path.join(base, p))]
    if not paths:
        return None
    target = os.path.join(out, name)
    with tarfile.open(target, 'w:gz') as tar:
        for p in paths:
            tar.add(os.path.join(base, p), arcname=p)
    return target


# --- speed

def stage_speed(args) -> None:
    from cnnzoo.bench.environment import environment
    from cnnzoo.bench.speed import markdown_table, run_benchmark

    if args.smoke:
        groups = [(['resnet20'], 32, 8, ['jax-fp32', 'jax-bf16', 'torch-eager-fp32'])]
        steps, warmup, rounds = 2, 1, 1
    else:
        eager = ['jax-fp32', 'jax-bf16', 'torch-eager-fp32', 'torch-eager-bf16-cl']
        compiled = [*eager, 'torch-compile-bf16-cl']
        groups = [(['resnet18'], 32, 512, compiled), (['resnet50'], 224, 256, compiled),
                  (['resnet56'], 32, 512, eager), (['vgg16_bn'], 32, 512, eager),
                  (['googlenet'], 32, 512, eager), (['alexnet'], 32, 512, eager)]
        steps, warmup, rounds = 30, 3, 5
    meta, results, skipped = None, [], []
    for models, size, batch, variants in groups:
        spent = time.time() - STARTED
        expected = 20 * len(variants) + (60 if any('compile' in v for v in variants) else 0)
        if not args.smoke and spent + expected > args.budget:
            skipped.append({'models': models, 'image_size': size, 'why': f'{spent:.0f}s spent of {args.budget}s'})
            log(f'skipping {",".join(models)}: {spent:.0f}s spent, about {expected}s more would pass the budget')
            continue
        report = run_benchmark(models, variants, batch_size=batch, steps=steps, warmup=warmup, rounds=rounds,
                               image_size=size, peak_flops=H200_BF16_PEAK, peak_name=PEAK_NAME, log=log)
        meta = meta or report['meta']
        results += report['results']
    meta = meta or environment()
    tables = []
    for size, batch in sorted({(r.image_size, r.batch_size) for r in results}):
        part = [r for r in results if r.image_size == size and r.batch_size == batch]
        tables.append(markdown_table({'meta': {**meta, 'flags': {**meta['flags'], 'batch_size': batch}},
                                      'results': part}))
    if skipped:
        tables.append('Not measured this turn (budget): '
                      + '; '.join(f'{",".join(s["models"])} at {s["image_size"]}px' for s in skipped))
    import dataclasses

    write_outputs(args.out, 'speed', {'meta': meta, 'results': [dataclasses.asdict(r) for r in results],
                                      'skipped': skipped}, '\n\n'.join(tables))


# --- tta

def stage_tta(args) -> None:
    from cnnzoo.cli.bench import compare_accuracy_main
    from cnnzoo.cli.train import train_main

    workdir = os.path.join(args.work, 'tta')
    experiment = os.path.join(ROOT, 'experiments', 'resnet18_tta94.py')
    overrides = data_flags(args)
    if args.smoke:
        overrides += ['--config.training.num_epochs=0', '--config.training.num_steps=3',
                      '--config.training.batch_size=8', '--config.training.eval_batch_size=16',
                      '--config.training.log_every_steps=1', '--config.training.eval_every_epochs=0.05',
                      '--config.model.stage_sizes=(1,1,1,1)', '--config.schedule.warmup_epochs=0']
    metrics = os.path.join(workdir, 'metrics.jsonl')
    seen, reached = {}, {}
    stop = threading.Event()

    def watch():  # the time each evaluation appears, to the poll's 0.1 s
        while not stop.is_set():
            for r in read_records(metrics):
                if r['split'] != 'train' and r['step'] not in seen:
                    seen[r['step']] = {**r, 'seen_at_seconds': time.time() - STARTED}
                    if r['accuracy'] >= TARGET_ACCURACY and not reached:
                        reached.update(seen[r['step']])
                        log(f'{100 * TARGET_ACCURACY:.0f}% reached at step {r["step"]}: '
                            f'{reached["seen_at_seconds"]:.1f}s after the start')
            stop.wait(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    log(f'JAX: cnnzoo train --config {experiment} (budget {args.budget}s)')
    with deadline(args.budget - (time.time() - STARTED)) as stopped:
        status = train_main(['--config', experiment, '--workdir', workdir, *overrides])
    time.sleep(0.3)
    stop.set()
    watcher.join()
    jax_seconds = time.time() - STARTED
    evals = [seen[s] for s in sorted(seen)]
    body = {'jax': {'exit_status': status, 'stopped_by_budget': stopped['fired'], 'evals': evals,
                    'seconds_to_target': reached.get('seen_at_seconds'), 'step_at_target': reached.get('step'),
                    'final_accuracy': evals[-1]['accuracy'] if evals else None,
                    'best_accuracy': max((e['accuracy'] for e in evals), default=None),
                    'wall_seconds': jax_seconds}}
    torch_status = None
    left = args.budget - jax_seconds
    if importlib_available('torch') and (args.smoke or left > 1.3 * jax_seconds):
        log(f'PyTorch: the same recipe through compare-accuracy --frameworks torch ({left:.0f}s left)')
        torch_status = compare_accuracy_main(['--config', experiment, '--frameworks', 'torch',
                                              '--out', os.path.join(args.out, 'tta_torch'),
                                              '--workdir', os.path.join(args.work, 'tta_torch'), *overrides])
    else:
        log(f'PyTorch side skipped: {left:.0f}s left of the budget, the JAX run took {jax_seconds:.0f}s')
    body['torch'] = {'exit_status': torch_status,
                     'report': 'tta_torch.json' if torch_status == 0 else None}
    target = f'{100 * TARGET_ACCURACY:.0f}%'
    lines = [f'ResNet-18 (CIFAR stem), experiments/resnet18_tta94.py{" (smoke sizes)" if args.smoke else ""}',
             '', f'| framework | time to {target} (s, from the process start) | step | final accuracy | best |',
             '|---|---|---|---|---|']
    j = body['jax']
    def fmt(v):
        return f'{100 * v:.2f}%' if v is not None else '–'

    lines.append(f'| JAX | {(j["seconds_to_target"] and round(j["seconds_to_target"], 1)) or "not reached"} '
                 f'| {j["step_at_target"] or "–"} | {fmt(j["final_accuracy"])} | {fmt(j["best_accuracy"])} |')
    if torch_status == 0:
        lines.append('| PyTorch | see tta_torch.md (wall time from its first step) | | | |')
    write_outputs(args.out, 'tta', body, '\n'.join(lines))
    tar_into(args.out, 'tta_files.tar.gz', args.work, ['tta/config.json', 'tta/metrics.jsonl'])


def importlib_available(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# --- seeds

def stage_seeds(args) -> None:
    from cnnzoo.cli.train import train_main

    experiment = os.path.join(ROOT, 'experiments', 'resnet20_cifar10.py')
    if args.smoke:
        ks, steps, extra = (1, 2), 4, ['--config.training.batch_size=8', '--config.training.log_every_steps=1',
                                       '--config.model.stage_sizes=(1,1,1)', '--config.training.eval_batch_size=16']
    else:
        ks, steps, extra = (1, 2, 4, 8, 16), 400, ['--config.training.log_every_steps=50']
    rows = []
    for k in ks:
        spent = time.time() - STARTED
        if rows and not args.smoke and spent + 2 * rows[-1]['wall_seconds'] > args.budget:
            log(f'K={k} skipped: {spent:.0f}s spent; the last K took {rows[-1]["wall_seconds"]:.0f}s')
            break
        workdir = os.path.join(args.work, f'seeds{k}')
        started = time.time()
        status = train_main(['--config', experiment, '--workdir', workdir, *data_flags(args), *extra,
                             f'--config.training.num_seeds={k}', f'--config.training.num_steps={steps}',
                             '--config.training.eval_every_epochs=1000', '--config.training.checkpoint_every_steps=100000'])
        wall = time.time() - started
        dirs = [workdir] if k == 1 else [os.path.join(workdir, f'seed{s}') for s in range(k)]
        rates = []
        for d in dirs:
            train = [r['images_per_sec'] for r in read_records(os.path.join(d, 'metrics.jsonl'))
                     if r['split'] == 'train' and r.get('images_per_sec')]
            if train:
                rates.append(statistics.median(train[1:] or train))  # the first window holds the compilation
        per_seed = statistics.mean(rates) if rates else None
        rows.append({'k': k, 'exit_status': status, 'steps': steps, 'wall_seconds': wall,
                     'images_per_sec_per_seed': per_seed, 'images_per_sec_all': per_seed and per_seed * k})
        log(f'K={k}: {per_seed or 0:.0f} images/s per seed, {wall:.0f}s')
    one = rows[0]['images_per_sec_per_seed']
    full_at = None
    for a, b in itertools.pairwise(rows):
        if a['images_per_sec_all'] and b['images_per_sec_all'] and b['images_per_sec_all'] < 1.1 * a['images_per_sec_all']:
            full_at = a['k']
            break
    lines = ['ResNet-20, batch 128 per seed, K seeds vmapped in one program (training.num_seeds)', '',
             '| K | images/s per seed | all seeds | per seed vs one seed | wall (s) |', '|---|---|---|---|---|']
    for r in rows:
        ratio = r['images_per_sec_per_seed'] / one if one and r['images_per_sec_per_seed'] else None
        lines.append(f'| {r["k"]} | {r["images_per_sec_per_seed"] or 0:.0f} | {r["images_per_sec_all"] or 0:.0f} '
                     f'| {(ratio and f"{ratio:.2f}") or "–"} | {r["wall_seconds"]:.0f} |')
    lines += ['', f'GPU full at K = {full_at}: doubling K past it adds under 10% images/s' if full_at
              else 'GPU not full at the largest K measured (each doubling added 10% or more)']
    write_outputs(args.out, 'seeds', {'rows': rows, 'full_at_k': full_at}, '\n'.join(lines))


# --- he2016

def stage_he2016(args) -> int | None:
    from cnnzoo.cli.report import report_main
    from cnnzoo.cli.sweep import sweep_main

    workdir = os.path.join(args.work, 'he2016')
    if os.path.isdir(STUDY_DIR):
        shutil.copytree(STUDY_DIR, workdir, dirs_exist_ok=True)
        log(f'started from the committed runs in {os.path.relpath(STUDY_DIR, ROOT)}')
    if args.resume and os.path.exists(args.resume):
        with tarfile.open(args.resume) as tar:
            tar.extractall(workdir, filter='data')
        log(f'unpacked the previous turn\'s unfinished runs from {args.resume}')
    extra = data_flags(args)
    seeds = '0,1,2,3'
    if args.smoke:
        seeds = '0,1'
        extra += ['--config.training.num_steps=4', '--config.training.batch_size=8',
                  '--config.training.eval_batch_size=16', '--config.training.log_every_steps=2',
                  '--config.model.stage_sizes=(1,1,1)']
    argv = ['--config', os.path.join(ROOT, 'experiments', 'he2016_cifar10.py'), '--workdir', workdir,
            '--only', 'resnet20,plain20', '--seeds', seeds, '--vmap-seeds', *extra]
    with deadline(args.budget - 20 - (time.time() - STARTED)) as stopped:
        status = sweep_main(argv)
    log(f'sweep exit status {status}{" (stopped by the budget)" if stopped["fired"] else ""}')
    if not os.path.isdir(workdir):  # refused before it made anything: its one line above says why
        write_outputs(args.out, 'he2016', {'sweep_exit_status': status, 'stopped_by_budget': stopped['fired'],
                                           'finished': [], 'unfinished': [], 'resume_tar': False},
                      'the sweep was refused before it ran (its error line is in he2016.log)')
        return status
    report_status = report_main([workdir])
    finished, unfinished = [], []
    for entry in sorted(os.listdir(workdir)):
        for seed_dir in sorted(os.listdir(os.path.join(workdir, entry))) if os.path.isdir(
                os.path.join(workdir, entry)) and entry != 'plots' else []:
            run = os.path.join(entry, seed_dir)
            records = read_records(os.path.join(workdir, run, 'metrics.jsonl'))
            if not records:
                continue
            with open(os.path.join(workdir, run, 'config.json')) as f:
                config = json.load(f)
            total = config['training']['num_steps']
            done = any(r['split'] != 'train' and r['step'] == total for r in records)
            (finished if done else unfinished).append(run)
    keep = ['sweep.json', 'report.md', 'report.csv', 'plots']
    for run in finished + unfinished:
        keep += [os.path.join(run, 'config.json'), os.path.join(run, 'metrics.jsonl')]
    tar_into(args.out, 'he2016_runs.tar.gz', workdir, keep)
    resume = []
    for run in unfinished:
        ckpts = os.path.join(workdir, run, 'checkpoints')
        steps = sorted((int(s) for s in os.listdir(ckpts) if s.isdigit()), reverse=True) if os.path.isdir(ckpts) else []
        if steps:
            resume += [os.path.join(run, 'config.json'), os.path.join(run, 'metrics.jsonl'),
                       os.path.join(run, 'checkpoints', str(steps[0]))]
    resume_path = tar_into(args.out, 'he2016_resume.tar.gz', workdir, resume)
    if resume_path and os.path.getsize(resume_path) > 15 * 2**20:
        log(f'{resume_path} is {os.path.getsize(resume_path) / 2**20:.1f} MiB, over what comes back: removed')
        os.remove(resume_path)
        resume_path = None
    if report_status == 0:
        with open(os.path.join(workdir, 'report.md')) as f:
            table = f.read()
    else:
        table = 'no report'
    write_outputs(args.out, 'he2016', {'sweep_exit_status': status, 'stopped_by_budget': stopped['fired'],
                                       'finished': finished, 'unfinished': unfinished,
                                       'resume_tar': bool(resume_path)},
                  f'finished: {", ".join(finished) or "none"}; unfinished: {", ".join(unfinished) or "none"}\n\n'
                  + table)
    return None


# --- resume

# (name, config.training.deterministic, JAX's compilation cache for the processes of the stopped runs)
RESUME_VARIANTS = (
    ('plain', False, 'off'),  # every process compiles, and autotunes, afresh
    ('cached', False, 'warm'),  # they load the uninterrupted run's programs from JAX's persistent cache
    ('deterministic', True, 'off'),  # --xla_gpu_deterministic_ops (cnnzoo.run.determinism); compiled afresh
)
STOPS = ('sigkill', 'sigterm')
# The smoke mode stops each variant once, and each kind of stop at least once: its processes are many.
SMOKE_CHAINS = (('plain', 'sigkill'), ('cached', 'sigterm'), ('deterministic', 'sigkill'))
STEP_LINE = re.compile(r'step (\d+)/')
RESUMED_AT = re.compile(r'resuming at step (\d+)')
TIMING_KEYS = ('images_per_sec',)  # what a record holds that is not the run's numbers


def resume_plan(smoke: bool) -> dict:
    """The run every variant trains (ResNet-20, batch 128 on the GPU) and where its stops land: a
    SIGKILL once ``kill_at`` is logged (after a checkpoint, before the next: the resumed process
    redoes steps), a SIGTERM once ``term_at`` is (the run saves where it stops)."""
    if smoke:
        return {'steps': 16, 'log_every': 1, 'checkpoint_every': 4, 'kill_at': 6, 'term_at': 10, 'batch': 8,
                'extra': ['--config.model.stage_sizes=(1,1,1)', '--config.training.batch_size=8',
                          '--config.training.eval_batch_size=16']}
    return {'steps': 1000, 'log_every': 50, 'checkpoint_every': 200, 'kill_at': 500, 'term_at': 700, 'batch': 128,
            'extra': []}


def resume_command(args, plan: dict, workdir: str, *, deterministic: bool, cache: bool, extra=()) -> list[str]:
    return [sys.executable, '-m', 'cnnzoo', 'train', '--config', os.path.join(ROOT, 'experiments', 'resnet20_cifar10.py'),
            '--workdir', workdir, *data_flags(args), *plan['extra'], f'--config.training.num_steps={plan["steps"]}',
            f'--config.training.log_every_steps={plan["log_every"]}', '--config.training.eval_every_epochs=1000',
            f'--config.training.checkpoint_every_steps={plan["checkpoint_every"]}',
            f'--config.training.deterministic={deterministic}', f'--config.training.compilation_cache={cache}', *extra]


def child_env(cache_dir: str | None, *, alone: bool, smoke: bool) -> dict:
    """The environment of a training process: no compilation cache but ``cache_dir``; a process that
    shares the GPU with others takes its memory as it needs it instead of 75% of it at the start.

    The smoke mode keeps a cache the environment names (the test suite's: its processes would
    otherwise spend most of their time compiling the same programs), so there every process may load
    programs another compiled; on a CPU that changes no bit (README, "Compilation cache")."""
    keep = smoke and 'JAX_COMPILATION_CACHE_DIR' in os.environ
    env = {k: v for k, v in os.environ.items() if keep or k != 'JAX_COMPILATION_CACHE_DIR'}
    if cache_dir and not keep:
        env['JAX_COMPILATION_CACHE_DIR'] = cache_dir
    if not alone:
        env['XLA_PYTHON_CLIENT_PREALLOCATE'] = 'false'
    return env


class Processes:
    """The training processes in flight, so that the stage can end them all when its budget is spent."""

    def __init__(self):
        self.lock, self.live, self.closed = threading.Lock(), set(), False

    def run(self, cmd, env, log_path, *, signal_at=None, sig=None, ready=lambda: True) -> dict:
        """Runs ``cmd`` to its end, its output to ``log_path``; with ``signal_at``, sends ``sig`` once a
        step at or past it is logged and ``ready()`` holds."""
        started = time.time()
        sent_after, resumed_at = None, None
        with open(log_path, 'a') as log:
            log.write(f'$ {" ".join(cmd)}\n')
            log.flush()
            with self.lock:
                if self.closed:
                    return {'exit_status': None, 'seconds': 0.0, 'signal_sent_after_step': None, 'resumed_at_step': None,
                            'last_line': 'not started: the budget was spent'}
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                        cwd=ROOT)
                self.live.add(proc)
            for line in proc.stdout:
                log.write(line)
                found = RESUMED_AT.search(line)
                if found:
                    resumed_at = int(found.group(1))
                step = STEP_LINE.match(line)
                if signal_at is not None and sent_after is None and step and int(step.group(1)) >= signal_at and ready():
                    proc.send_signal(sig)
                    sent_after = int(step.group(1))
            status = proc.wait()
            with self.lock:
                self.live.discard(proc)
            log.write(f'[exit status {status}, {time.time() - started:.1f}s]\n')
        with open(log_path) as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        return {'exit_status': status, 'seconds': round(time.time() - started, 1), 'signal_sent_after_step': sent_after,
                'resumed_at_step': resumed_at, 'last_line': lines[-2] if len(lines) > 1 else ''}

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for proc in self.live:
                proc.kill()


def final_arrays(workdir: str, step: int) -> dict:
    """``{path: numpy array}`` of the run's checkpoint at ``step``: every array of its state."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    with warnings.catch_warnings():  # orbax: 'Sharding info not provided when restoring' (it reads it from the file)
        warnings.simplefilter('ignore', UserWarning)
        tree = ocp.PyTreeCheckpointer().restore(os.path.join(workdir, 'checkpoints', str(step), 'state'))
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def compare_arrays(a: dict, b: dict) -> dict:
    """Bitwise: the same paths, and each array the same dtype, shape and bytes. Where they are not:
    how many arrays differ, and the largest absolute difference between two float arrays."""
    import numpy as np

    differing, largest = [], 0.0
    for path in sorted(a.keys() | b.keys()):
        x, y = a.get(path), b.get(path)
        if x is None or y is None or x.dtype != y.dtype or x.shape != y.shape:
            differing.append(path)
            largest = float('inf')
        elif x.tobytes() != y.tobytes():
            differing.append(path)
            if np.issubdtype(x.dtype, np.floating):
                largest = max(largest, float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))))
    return {'bitwise_equal': not differing, 'arrays': len(a.keys() | b.keys()), 'differing_arrays': len(differing),
            'max_abs_difference': largest, 'first_differing': differing[:3]}


def compare_records(a: list[dict], b: list[dict]) -> dict:
    """metrics.jsonl record for record, less the timings: equal, or the first step where they part."""
    a, b = ([{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rs] for rs in (a, b))
    first = next((x.get('step', y.get('step')) for x, y in zip(a, b) if x != y), None)
    if first is None and len(a) != len(b):
        first = (a if len(a) > len(b) else b)[min(len(a), len(b))]['step']
    return {'equal': a == b, 'first_differing_step': first}


def steps_per_second(workdir: str, batch: int) -> dict:
    """The training speed of a run from its records: the median of its windows but the first (which
    holds the compilation), as steps/s, with the slowest and fastest window."""
    rates = [r['images_per_sec'] / batch for r in read_records(os.path.join(workdir, 'metrics.jsonl'))
             if r['split'] == 'train' and r.get('images_per_sec')][1:]
    if not rates:
        return {'median': None}
    return {'median': statistics.median(rates), 'min': min(rates), 'max': max(rates), 'windows': len(rates)}


def stage_resume(args) -> None:
    """ResNet-20 trained whole, SIGKILLed and resumed, SIGTERMed and resumed, for each of
    :data:`RESUME_VARIANTS`; the final states compared bitwise with the whole run's; the speed with and
    without the switch from the two whole runs, each trained alone on the GPU; and whether a model
    with max pooling compiles under the switch (XLA had no deterministic select-and-scatter)."""
    plan = resume_plan(args.smoke)
    work, logs = os.path.join(args.work, 'resume'), os.path.join(args.work, 'resume', 'logs')
    os.makedirs(logs, exist_ok=True)
    warm_cache = os.path.join(work, 'compilation_cache')
    procs, results = Processes(), {}
    # The comparison and the files need the last seconds. (The smoke mode has no deadline: a loaded
    # machine may be slow, and the test that runs it has its own.)
    deadline = None if args.smoke else STARTED + args.budget - 15

    # 1. The whole runs, one at a time and alone on the GPU: the references, and the speed. (The smoke
    #    mode measures no speed: it runs them beside the others, to be done sooner.)
    wholes = {}

    def whole(deterministic):
        name = 'whole_deterministic' if deterministic else 'whole'
        workdir = os.path.join(work, name)
        log(f'{name}: {plan["steps"]} steps uninterrupted{" with the switch" if deterministic else ""}')
        leg = procs.run(resume_command(args, plan, workdir, deterministic=deterministic, cache=not deterministic),
                        child_env(None if deterministic else warm_cache, alone=not args.smoke, smoke=args.smoke),
                        os.path.join(logs, f'{name}.log'))
        wholes[deterministic] = {'workdir': workdir, **leg, 'steps_per_second': steps_per_second(workdir, plan['batch'])}
        log(f'{name}: exit status {leg["exit_status"]}, {leg["seconds"]}s, '
            f'{wholes[deterministic]["steps_per_second"]["median"] or 0:.1f} steps/s')

    threads = [threading.Thread(target=whole, args=(d,), daemon=True) for d in (False, True)]
    if not args.smoke:
        for t in threads:
            t.start()
            t.join()
        threads = []

    # 2. The stopped runs, all at once (their speed is not measured), and the max-pooling check.
    def chain(variant, deterministic, cache, kind):
        name = f'{variant}_{kind}'
        workdir, log_path = os.path.join(work, name), os.path.join(logs, f'{name}.log')
        env = child_env(warm_cache if cache == 'warm' else None, alone=False, smoke=args.smoke)
        cmd = resume_command(args, plan, workdir, deterministic=deterministic, cache=cache == 'warm')
        sig = signal.SIGKILL if kind == 'sigkill' else signal.SIGTERM
        at = plan['kill_at' if kind == 'sigkill' else 'term_at']
        saved = os.path.join(workdir, 'checkpoints', str(at // plan['checkpoint_every'] * plan['checkpoint_every']))
        # A SIGKILL lands once the checkpoint before it is complete (orbax renames it into place), so
        # that the resumed process starts from it and does again the steps after it.
        stopped = procs.run(cmd, env, log_path, signal_at=at, sig=sig, ready=lambda: os.path.isdir(saved))
        interrupted = (stopped['signal_sent_after_step'] is not None  # by our signal, not by the budget's end
                       and stopped['exit_status'] == (-signal.SIGKILL if kind == 'sigkill' else 128 + signal.SIGTERM))
        resumed = procs.run(cmd, env, log_path) if interrupted else {'exit_status': None, 'why': 'not interrupted'}
        results[name] = {'variant': variant, 'stop': kind, 'workdir': workdir, 'stopped': stopped, 'resumed': resumed,
                         'interrupted': interrupted}
        log(f'{name}: stopped with exit status {stopped["exit_status"]} after step {stopped.get("signal_sent_after_step")}, '
            f'resumed at step {resumed.get("resumed_at_step")}, exit status {resumed["exit_status"]}')

    def max_pool_check():
        workdir = os.path.join(work, 'max_pool_deterministic')
        small = {**plan, 'steps': 3 if not args.smoke else 2}
        leg = procs.run(resume_command(args, small, workdir, deterministic=True, cache=False,
                                       extra=['--config.model.stem=imagenet']),
                        child_env(None, alone=False, smoke=args.smoke), os.path.join(logs, 'max_pool_deterministic.log'))
        with open(os.path.join(logs, 'max_pool_deterministic.log')) as f:
            text = f.read().splitlines()
        why = next((line.strip() for line in reversed(text) if 'deterministic' in line and 'UNIMPLEMENTED' in line), None)
        results['max_pool'] = {**leg, 'compiles': leg['exit_status'] == 0, 'error': why or (None if leg['exit_status'] == 0
                                                                                              else leg['last_line'])}
        log(f'max pooling under the switch: exit status {leg["exit_status"]}{": " + why if why else ""}')

    threads += [threading.Thread(target=chain, args=(v, d, c, k), daemon=True)
                for v, d, c in RESUME_VARIANTS for k in STOPS if not args.smoke or (v, k) in SMOKE_CHAINS]
    threads.append(threading.Thread(target=max_pool_check, daemon=True))
    log(f'{len(threads)} processes at once: the stopped runs (each run again after its stop), the max-pooling '
        f'check{" and the whole runs" if args.smoke else ""} ({time.time() - STARTED:.0f}s spent)')
    for t in threads:
        t.start()
    for t in threads:
        t.join(None if deadline is None else max(0.0, deadline - time.time()))
    if any(t.is_alive() for t in threads):
        log('budget spent: the processes still running are killed; their runs are reported unfinished')
        procs.close()
        for t in threads:
            t.join(30)

    # 3. Bitwise comparisons with the whole run of the same switch, on this machine's default device.
    #    A comparison that fails (a checkpoint missing, say) is reported in its row: the stage's one turn
    #    on the GPU still leaves its files.
    steps = plan['steps']

    def outcome(workdir):
        try:
            return final_arrays(workdir, steps), read_records(os.path.join(workdir, 'metrics.jsonl'))
        except Exception as e:  # noqa: BLE001  (reported, never hidden)
            return {'error': f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'}

    reference = {}
    for d in (False, True):
        whole_run = wholes.get(d)
        got = outcome(whole_run['workdir']) if whole_run and whole_run['exit_status'] == 0 else None
        if isinstance(got, dict):
            whole_run['error'] = got['error']
        reference[d] = got if isinstance(got, tuple) else None
    rows = []
    for variant, deterministic, cache in RESUME_VARIANTS:
        for kind in STOPS:
            if args.smoke and (variant, kind) not in SMOKE_CHAINS:
                continue
            r = results.get(f'{variant}_{kind}')
            row = {'variant': variant, 'deterministic': deterministic, 'compilation_cache': cache, 'stop': kind,
                   **({k: r[k] for k in ('interrupted', 'stopped', 'resumed')} if r else {'interrupted': False})}
            if r and r['interrupted'] and r['resumed']['exit_status'] == 0 and reference[deterministic]:
                mine = outcome(r['workdir'])
                if isinstance(mine, dict):
                    row['error'] = mine['error']
                else:
                    row['state'] = compare_arrays(mine[0], reference[deterministic][0])
                    row['records'] = compare_records(mine[1], reference[deterministic][1])
            rows.append(row)
    switch_changes = (compare_arrays(reference[True][0], reference[False][0])
                      if reference[True] and reference[False] else None)
    off, on = (wholes[d]['steps_per_second']['median'] if d in wholes else None for d in (False, True))
    body = {'plan': dict(plan), 'whole_runs': {('with' if d else 'without') + '_switch': w for d, w in wholes.items()},
            'rows': rows, 'max_pool': results.get('max_pool'), 'switch_changes_the_numbers': switch_changes,
            'speed': {'steps_per_second_without': off, 'steps_per_second_with': on,
                      'ratio_with_to_without': on / off if on and off else None}}
    write_outputs(args.out, 'resume', body, resume_table(body, smoke=args.smoke))
    logs_and_records = ['resume/logs'] + [os.path.join('resume', os.path.basename(w['workdir']), f)
                                          for w in [*wholes.values(), *results.values()] if 'workdir' in w
                                          for f in ('config.json', 'metrics.jsonl')]
    tar_into(args.out, 'resume_files.tar.gz', args.work, logs_and_records)


def resume_table(body: dict, *, smoke: bool) -> str:
    plan = body['plan']
    title = (f'ResNet-20{" (smoke sizes)" if smoke else ""}, batch {plan["batch"]}, {plan["steps"]} steps: the final '
             'state of each stopped-and-resumed run against the uninterrupted run with the same switch')
    head = ('| switch | compilation cache of the stopped runs | stop | resumed at | final state | arrays differing '
            '| max abs difference | metrics.jsonl |')
    lines = [title, '', head, '|---|---|---|---|---|---|---|---|']
    for row in body['rows']:
        where = (f'step {row["resumed"].get("resumed_at_step")} (stopped after {row["stopped"]["signal_sent_after_step"]})'
                 if row.get('interrupted') else 'not interrupted: no comparison')
        state, records = row.get('state'), row.get('records')
        lines.append(
            f'| {"on" if row["deterministic"] else "off"} | {row["compilation_cache"]} | {row["stop"]} | {where} | '
            + (f'{"bitwise equal" if state["bitwise_equal"] else "differs"} | {state["differing_arrays"]} of '
               f'{state["arrays"]} | {state["max_abs_difference"]:.3g} | '
               + ('equal' if records['equal'] else f'differs from step {records["first_differing_step"]}') + ' |'
               if state else f'{row.get("error", "–")} | – | – | – |'))
    speed, changes, pool = body['speed'], body['switch_changes_the_numbers'], body['max_pool']
    def fmt(v):
        return f'{v:.1f}' if v else '–'

    how = ('beside the other processes: no measurement' if smoke else
           'each alone on the GPU, the median of the logging windows past the first')
    lines += ['', f'Speed of the uninterrupted runs ({how}): {fmt(speed["steps_per_second_without"])} steps/s '
                  f'without the switch, {fmt(speed["steps_per_second_with"])} with it'
              + (f' ({speed["ratio_with_to_without"]:.2f}x)' if speed['ratio_with_to_without'] else '') + '.']
    if changes:
        lines.append('The uninterrupted run with the switch against the one without: '
                     + ('bitwise equal' if changes['bitwise_equal'] else
                        f'{changes["differing_arrays"]} of {changes["arrays"]} arrays differ '
                        f'(max abs difference {changes["max_abs_difference"]:.3g})') + '.')
    if pool:
        lines.append('A model with max pooling (resnet20, ImageNet stem) under the switch: '
                     + ('compiles and trains' if pool['compiles'] else f'fails: {pool["error"]}') + '.')
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('stage', choices=STAGES)
    parser.add_argument('out', help='the folder the outputs go to (created)')
    parser.add_argument('--archive', required=True, help='the CIFAR-10 archive (python layout)')
    parser.add_argument('--smoke', action='store_true', help='a few steps of tiny sizes, on any device')
    parser.add_argument('--budget', type=float, default=BUDGET_SECONDS,
                        help='seconds from the start this stage may use (default %(default)s)')
    parser.add_argument('--work', default='', help='scratch folder (default: a new temporary one)')
    parser.add_argument('--resume', default=os.path.join(ROOT, '.gpu', 'he2016_resume.tar.gz'),
                        help='he2016: the previous turn\'s he2016_resume.tar.gz, if carried')
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    args.work = args.work or tempfile.mkdtemp(prefix=f'cnnzoo-gpu-{args.stage}-')
    # A SIGTERM outside a run (between two of them) must not kill the stage before it writes its files.
    signal.signal(signal.SIGTERM, lambda *_: log('SIGTERM between runs: ignored, the stage writes its files'))
    log(f'stage {args.stage}{" (smoke)" if args.smoke else ""}: budget {args.budget:.0f}s, scratch {args.work}')
    status = {'speed': stage_speed, 'tta': stage_tta, 'seeds': stage_seeds, 'he2016': stage_he2016,
              'resume': stage_resume}[args.stage](args)
    log(f'stage {args.stage} done' + (f' (exit status {status})' if status else ''))
    return status or 0


if __name__ == '__main__':
    sys.exit(main())
