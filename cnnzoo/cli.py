r"""The command line: one console command, ``cnnzoo``, whose commands are what ``scripts/*.py`` run.

    cnnzoo train --config experiments/resnet20_cifar10.py --workdir runs/r20 [--config.KEY=VALUE ...]
    cnnzoo evaluate --workdir runs/r20 [--checkpoint best|latest|STEP]
    cnnzoo config experiments/resnet20_cifar10.py [--config.KEY=VALUE ...]   # the resolved config, as JSON
    cnnzoo models ['vgg*']
    cnnzoo compare-pytorch [--models ...] / cnnzoo compare-accuracy --config ...
    cnnzoo --help; cnnzoo COMMAND --help (with --config.model.name=NAME, train's also lists the model's fields)

A command is one entry of :data:`COMMANDS`, ``name -> (module, function, one line of help)``: the
function takes the arguments after the command's name and returns the exit status, and its module
is imported only when the command runs, so ``cnnzoo --help`` imports no JAX. ``scripts/X.py``
calls the same function with the same arguments. Flags and errors only: the work is in the library.

Exit statuses, the same for every command and script:

    0        finished
    1        the run failed: a NaN or infinite loss, a workdir in use, a full disk or another OS
             error while saving (RunError); also an unexpected error, shown with its traceback
    2        bad input, refused before anything ran: a flag, key, value, experiment file or
             dataset (ConfigError, DataError)
    128 + N  stopped by signal N after saving a checkpoint: 143 for SIGTERM, 130 for SIGINT
             (Ctrl-C), the status a shell gives a process killed by that signal, which schedulers
             read as "killed, requeue"; run the same command to resume

Errors are one line on stderr (``error: ...``); set ``CNNZOO_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import datetime
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

from cnnzoo.config import ConfigError, apply_overrides, default_config, load_config_file, to_json

HELP_FLAGS = ('-h', '--help')

USAGE_TRAIN = """\
usage: cnnzoo train --config EXPERIMENT.py --workdir DIR [--extend] [--dry-run] [--config.KEY=VALUE ...]
                    [--coordinator HOST:PORT --num-processes N --process-id I | --distributed]
       (python scripts/train.py takes the same arguments)

Trains the config of an experiment file in DIR; the same command resumes it from its last checkpoint.

  --config FILE        an experiment file defining get_config() (experiments/*.py)
  --workdir DIR        the run's directory: config.json, metrics.jsonl, tb/, checkpoints/, best/
  --extend             let a run go on with a longer training.num_steps or num_epochs than it had
  --dry-run            check the config and print it resolved, as JSON; nothing is read, trained or
                       written (--workdir not needed; the same as: cnnzoo config FILE ...)
  --config.KEY=VALUE   set any key below (a Python literal, else a string)
  -h, --help           this help; with --config.model.name=NAME or --config FILE, also the model's fields

several processes or machines (README, "More devices and machines"): every process runs the same
command with its own --process-id; the mesh spans all their devices; process 0 writes the files
  --coordinator H:P    address of process 0's coordinator service (any free port on its machine)
  --num-processes N    how many processes take part
  --process-id I       this process's number, 0..N-1
  --distributed        join with JAX's auto-detection instead (SLURM, Open MPI, TPU pods)
  --distributed-timeout S  seconds to wait for the others before giving up (default 300)

example:
  cnnzoo train --config experiments/resnet20_cifar10.py --workdir runs/r20 --config.training.num_epochs=1
  cnnzoo train --config experiments/resnet20_cifar10.py --config.model.name=plain20 --dry-run

exit status: 0 done, 1 the run failed, 2 bad input, 128+N stopped by signal N after saving
(143 SIGTERM, 130 Ctrl-C: run the same command to resume)
"""

USAGE_EVALUATE = """\
usage: cnnzoo evaluate --workdir DIR [--checkpoint best|latest|STEP] [--config.KEY=VALUE ...]
       cnnzoo evaluate --config EXPERIMENT.py --torch-checkpoint FILE [--no-compare] [--config.KEY=VALUE ...]
       (python scripts/evaluate.py takes the same arguments)

Test accuracy and loss of one checkpoint of a training run, with the run's own config; or the
accuracy of a PyTorch state_dict file (a torchvision checkpoint) converted to the experiment's
model, on its data's evaluation split, beside the PyTorch twin's predictions on the same files
(top-1 agreement and the largest logit difference).

  --workdir DIR        the directory of a training run
  --checkpoint WHICH   best (by eval accuracy; the default), latest, or a step number
  --config FILE        with --torch-checkpoint: the experiment whose model and data to use
  --torch-checkpoint FILE  a state_dict saved by torch.save(model.state_dict(), FILE)
  --no-compare         with --torch-checkpoint: skip the PyTorch twin's pass
  --config.KEY=VALUE   change a key of the config for this evaluation, e.g. where the data is
  -h, --help           this help

examples:
  cnnzoo evaluate --workdir runs/r20 --checkpoint latest --config.data.archive=~/cifar-10-python.tar.gz
  cnnzoo evaluate --config experiments/resnet50_imagenet.py --torch-checkpoint resnet50-11ad3fa6.pth \\
      --config.data.source=folder --config.data.folder=~/imagenet
"""

USAGE_CONFIG = """\
usage: cnnzoo config [EXPERIMENT.py] [--config.KEY=VALUE ...]

Prints the config an experiment file and overrides resolve to, as JSON (the schema's defaults
without a file), after the same checks a run makes first; nothing is read, trained or written.
A bad key or value is one line and exit status 2. `cnnzoo train --help` lists the keys.

example:
  cnnzoo config experiments/he2016_cifar10.py --config.model.name=plain56 --config.schedule.ratio=5:3:2
"""

USAGE_MODELS = """\
usage: cnnzoo models [PATTERN]
       (python scripts/models.py takes the same arguments)

Lists every registered model (or those matching the glob PATTERN) with its parameters at 10 and
1000 classes and its forward GFLOPs at 32x32 and 224x224: XLA's HLO cost analysis of one eval-mode
forward pass (a multiply-add counts 2); nothing is run.

example:
  cnnzoo models 'vgg*'
"""

DESCRIPTION_COMPARE_PYTORCH = """\
Training and evaluation speed of cnnzoo models in JAX and PyTorch, side by side in one process.
(python scripts/compare_pytorch.py takes the same arguments.) Prints a Markdown table and writes
<out>.json (device, versions, command, load, flags, every figure) and <out>.md. What is measured and
how: the docstring of cnnzoo/benchmark.py.

examples:
  cnnzoo compare-pytorch --models resnet20 --batch-size 128 --steps 20 --out results/cpu/r20
  cnnzoo compare-pytorch --variants jax-bf16,torch-eager-bf16-cl --batch-size 512   # a GPU
"""

USAGE_COMPARE_ACCURACY = """\
usage: cnnzoo compare-accuracy --config EXPERIMENT.py [--out PREFIX] [--workdir DIR] [--frameworks jax,torch]
                               [--config.KEY=VALUE ...]
       (python scripts/compare_accuracy.py takes the same arguments)

Trains one config with cnnzoo's loop (JAX) and its PyTorch twin from the same initial weights, with
the same batches, augmentation draws, optimizer and schedule, and writes accuracy and wall time side
by side. What is kept equal: cnnzoo/torch/recipe.py; how it is timed: cnnzoo/torch/compare_accuracy.py.

  --config FILE        an experiment file (required)
  --out PREFIX         where <PREFIX>.json and .md go (default results/<backend>/accuracy_<model>_<time>)
  --workdir DIR        the JAX run's directory, must be fresh (default runs/accuracy_<model>_<time>)
  --frameworks LIST    comma-separated, from jax,torch (default both)
  --config.KEY=VALUE   any config key (cnnzoo train --help lists them)

example:
  cnnzoo compare-accuracy --config experiments/resnet20_cifar10.py --config.training.num_epochs=3 \\
      --config.model.bn_running_var=unbiased --out results/cpu/accuracy_resnet20_3epochs
"""


def wants_help(argv: Sequence[str]) -> bool:
    return any(a in HELP_FLAGS for a in argv)


def split_switches(argv: Sequence[str], switches: set[str]) -> tuple[set[str], list[str]]:
    """Takes the flags without a value (``--dry-run``) out of ``argv``: ``({'dry-run'}, rest)``."""
    found = {a[2:] for a in argv if a.startswith('--') and a[2:] in switches}
    return found, [a for a in argv if not (a.startswith('--') and a[2:] in switches)]


def split_flags(argv: Sequence[str], known: set[str]) -> tuple[dict, list[tuple[str, str]]]:
    """Separates ``--flag=value`` / ``--flag value`` for ``known`` flags from ``--config.k=v`` overrides."""
    flags, overrides = {}, []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith('--'):
            raise ConfigError(f'unexpected argument {arg!r}')
        name, has_value, value = arg[2:].partition('=')
        if not has_value:
            if i + 1 >= len(args) or args[i + 1].startswith('--'):
                raise ConfigError(f'--{name} needs a value')
            value = args[i + 1]
            i += 1
        if name.startswith('config.'):
            overrides.append((name[len('config.'):], value))
        elif name in known:
            flags[name] = value
        else:
            raise ConfigError(f'unknown flag --{name} (known: {", ".join("--" + k for k in sorted(known))}, '
                              '--config.KEY=VALUE)')
        i += 1
    return flags, overrides


def run_cli(main: Callable[[], int | None]) -> int:
    """Runs ``main`` and turns the project's own errors into one line and an exit status (see the
    module docstring); ``main``'s own status when it returns one, else 0."""
    try:
        status = main()
    except BrokenPipeError:  # the reader went away (`cnnzoo train --help | head`): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        # Imported here, not above, so that `--help` never waits for the data and workdir modules.
        from cnnzoo.data import DataError
        from cnnzoo.workdir import RunError

        # An OS error that reached here (a full disk while writing metrics, a read-only directory)
        # stopped the run: its own words and the file are the one line a user needs.
        statuses = {ConfigError: 2, DataError: 2, RunError: 1, OSError: 1}
        code = next((code for kind, code in statuses.items() if isinstance(e, kind)), None)
        if code is None or os.environ.get('CNNZOO_DEBUG'):
            raise
        text = f'{e.strerror}: {e.filename}' if isinstance(e, OSError) and e.strerror and e.filename else e
        print(f'error: {text}', file=sys.stderr)
        return code
    return status if isinstance(status, int) else 0


def exit_status(summary: dict) -> int:
    """0 for a finished run; 128 + the signal's number for one that SIGTERM or SIGINT stopped (after
    it saved), as a shell reports a process that signal killed."""
    stopped = summary.get('stopped_by')
    return 128 + signal.Signals[stopped].value if stopped else 0


def checked(config):
    """``config``, once it passed the whole check a run makes first (:func:`cnnzoo.validation.check_config`)."""
    from cnnzoo.validation import check_config  # imports JAX: after the flags are known good

    check_config(config)
    return config


DISTRIBUTED_FLAGS = {'coordinator', 'num-processes', 'process-id', 'distributed-timeout'}


def parse_train_args(argv: Sequence[str], *, need_workdir: bool = True):
    """``(config, workdir)`` from train's arguments; ``workdir`` is None when not needed and not given."""
    config, workdir, _ = parse_train_flags(argv, need_workdir=need_workdir)
    return config, workdir


def parse_train_flags(argv: Sequence[str], *, need_workdir: bool = True):
    """``(config, workdir, distributed flags)`` from train's arguments."""
    flags, overrides = split_flags(argv, {'config', 'workdir'} | DISTRIBUTED_FLAGS)
    for required in ('config', 'workdir') if need_workdir else ('config',):
        if required not in flags:
            raise ConfigError(f'--{required} is required (cnnzoo train --help)')
    config = load_config_file(flags['config'])
    apply_overrides(config, overrides)
    return config, flags.get('workdir'), {k: v for k, v in flags.items() if k in DISTRIBUTED_FLAGS}


def join_processes(flags: dict, auto: bool) -> bool:
    """``jax.distributed.initialize`` from train's flags; False when the run is a single process."""
    if not flags and not auto:
        return False

    def number(name):
        text = flags.get(name)
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f'--{name} {text!r}: expected a whole number') from None

    from cnnzoo.distributed import DEFAULT_TIMEOUT_S, initialize

    timeout = number('distributed-timeout')
    initialize(coordinator=flags.get('coordinator'), num_processes=number('num-processes'),
               process_id=number('process-id'), timeout_s=DEFAULT_TIMEOUT_S if timeout is None else timeout)
    return True


def train_help(argv: Sequence[str]) -> str:
    """Train's usage, every schema key, and the fields of the model that ``argv`` names, if any."""
    from cnnzoo.schema_help import model_help, schema_help

    _, rest = split_switches([a for a in argv if a not in HELP_FLAGS], {'extend', 'dry-run', 'distributed'})
    flags, overrides = split_flags(rest, {'config', 'workdir'} | DISTRIBUTED_FLAGS)
    parts = [USAGE_TRAIN, schema_help()]
    named = [value for key, value in overrides if key == 'model.name']
    if 'config' in flags:
        named.append(apply_overrides(load_config_file(flags['config']), overrides).model.name)
    if named:
        parts.append(model_help(named[-1]))
    return '\n\n'.join(part.rstrip() for part in parts)


def train_main(argv: Sequence[str]) -> int:
    def main():
        if wants_help(argv):
            print(train_help(argv))
            return 0
        switches, rest = split_switches(argv, {'extend', 'dry-run', 'distributed'})
        config, workdir, distributed = parse_train_flags(rest, need_workdir='dry-run' not in switches)
        if 'dry-run' in switches:
            print(to_json(checked(config)))
            print('dry run: the config is good; nothing was read, trained or written', file=sys.stderr)
            return 0
        from cnnzoo.validation import check_config, check_devices

        # A bad value is refused before the training stack is imported, and before a process waits
        # for the others of a multi-process run; the device count is known once it has joined.
        check_config(config, devices=False)
        join_processes(distributed, auto='distributed' in switches)
        check_devices(config)
        from cnnzoo.loop import train_and_evaluate

        return exit_status(train_and_evaluate(config, workdir, extend='extend' in switches))

    return run_cli(main)


def config_main(argv: Sequence[str]) -> int:
    def main():
        if wants_help(argv):
            print(USAGE_CONFIG)
            return 0
        path = argv[0] if argv and not argv[0].startswith('--') else None
        flags, overrides = split_flags(argv[1:] if path else argv, {'config'})
        path = path or flags.get('config')
        config = load_config_file(path) if path else default_config()
        print(to_json(checked(apply_overrides(config, overrides))))
        return 0

    return run_cli(main)


def evaluate_main(argv: Sequence[str]) -> int:
    def main():
        if wants_help(argv):
            print(USAGE_EVALUATE)
            return 0
        switches, rest = split_switches(argv, {'no-compare'})
        flags, overrides = split_flags(rest, {'workdir', 'checkpoint', 'config', 'torch-checkpoint'})
        if 'torch-checkpoint' in flags:
            return evaluate_torch(flags, overrides, compare='no-compare' not in switches)
        if 'workdir' not in flags:
            raise ConfigError('--workdir is required (the directory of a training run), or --config with '
                              '--torch-checkpoint')
        from cnnzoo.evaluate import evaluate_checkpoint

        which = flags.get('checkpoint', 'best')
        which = int(which) if which.isdigit() else which
        if which not in ('best', 'latest') and not isinstance(which, int):
            raise ConfigError(f'--checkpoint must be best, latest or a step number, got {which!r}')
        result = evaluate_checkpoint(flags['workdir'], which=which, overrides=overrides)
        print(f'{result["model"]} step {result["step"]} ({which}): test accuracy {result["accuracy"]:.4f}, '
              f'loss {result["loss"]:.4f} on {result["count"]} images')

    return run_cli(main)


def evaluate_torch(flags: dict, overrides, *, compare: bool) -> int:
    """``cnnzoo evaluate --config X --torch-checkpoint FILE``: accuracy, and agreement with the twin."""
    if 'config' not in flags:
        raise ConfigError('--torch-checkpoint needs --config EXPERIMENT.py (the model and data to evaluate on)')
    if 'workdir' in flags or 'checkpoint' in flags:
        raise ConfigError('--torch-checkpoint evaluates a file: drop --workdir/--checkpoint')
    config = apply_overrides(load_config_file(flags['config']), overrides)
    from cnnzoo.evaluate import evaluate_torch_checkpoint

    r = evaluate_torch_checkpoint(config, flags['torch-checkpoint'], compare=compare)
    print(f'{r["model"]} from {r["checkpoint"]}: top-1 accuracy {r["accuracy"]:.4f}, top-5 {r["top5_accuracy"]:.4f} '
          f'on {r["count"]} images')
    if 'top1_agreement' in r:
        print(f'PyTorch twin ({r["torch_pipeline"]}): top-1 accuracy {r["torch_accuracy"]:.4f}; '
              f'top-1 agreement {100 * r["top1_agreement"]:.2f}%, max logit difference '
              f'{r["max_logit_difference"]:.2e} (relative {r["max_relative_difference"]:.2e})')
    return 0


def models_main(argv: Sequence[str]) -> int:
    def main():
        if wants_help(argv):
            print(USAGE_MODELS)
            return 0
        if len(argv) > 1 or any(a.startswith('-') for a in argv):
            raise ConfigError(f'models takes one optional PATTERN, got {" ".join(argv)!r}')
        from cnnzoo.models import list_models
        from cnnzoo.models.summary import markdown_table, summary_rows

        names = list_models(argv[0] if argv else None)
        if not names:
            raise ConfigError(f'no model matches {argv[0]!r}; known: {", ".join(list_models())}')
        print(markdown_table(summary_rows(names)))

    return run_cli(main)


def compare_pytorch_main(argv: Sequence[str]) -> int:
    import argparse

    from cnnzoo.benchmark import DEFAULT_MODELS, DEFAULT_VARIANTS, JAX_VARIANTS, TORCH_VARIANTS, compare

    class Parser(argparse.ArgumentParser):
        def error(self, message):  # one line and status 2, as every other command
            raise ConfigError(message)

    def comma_list(text):
        return [item for item in text.split(',') if item]

    parser = Parser(prog='cnnzoo compare-pytorch', description=DESCRIPTION_COMPARE_PYTORCH, allow_abbrev=False,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', type=comma_list, default=','.join(DEFAULT_MODELS),
                        help='comma-separated registry names, run as their CIFAR adaptation (default: %(default)s)')
    parser.add_argument('--variants', type=comma_list, default=','.join(DEFAULT_VARIANTS),
                        help=f'comma-separated, from {",".join((*JAX_VARIANTS, *TORCH_VARIANTS))} '
                             '(default: %(default)s)')
    parser.add_argument('--batch-size', type=int, default=128, help='images per step (default: %(default)s)')
    parser.add_argument('--steps', type=int, default=20, help='timed train (and eval) steps per variant')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps first; the first compiles')
    parser.add_argument('--rounds', type=int, default=5, help='the timed steps run interleaved in this many rounds')
    parser.add_argument('--out', default=None,
                        help='path prefix of the .json and .md written '
                             '(default: results/<backend>/compare_pytorch_<time>)')

    def main():
        if wants_help(argv):
            print(parser.format_help())
            return 0
        args = parser.parse_args(argv)
        try:
            compare(args.models, args.variants, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                    rounds=args.rounds, out=args.out)
        except ValueError as e:
            raise ConfigError(str(e)) from e

    return run_cli(main)


def compare_accuracy_main(argv: Sequence[str]) -> int:
    def main():
        if wants_help(argv):
            print(USAGE_COMPARE_ACCURACY)
            return 0
        flags, overrides = split_flags(argv, {'config', 'out', 'workdir', 'frameworks'})
        if 'config' not in flags:
            raise ConfigError('--config is required (cnnzoo compare-accuracy --help)')
        config = apply_overrides(load_config_file(flags['config']), overrides)
        frameworks = [f for f in flags.get('frameworks', 'jax,torch').split(',') if f]

        import jax

        from cnnzoo.torch.compare_accuracy import FRAMEWORKS, compare_accuracy, markdown, write

        if not frameworks or any(f not in FRAMEWORKS for f in frameworks):
            raise ConfigError(f'--frameworks takes a comma-separated list from {",".join(FRAMEWORKS)}')
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
        name = f'accuracy_{config.model.name}_{stamp}'
        out = flags.get('out') or os.path.join('results', jax.default_backend(), name)
        workdir = flags.get('workdir') or os.path.join('runs', name)
        try:
            report = compare_accuracy(config, workdir=workdir, frameworks=frameworks)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        paths = write(report, out)
        print(markdown(report))
        print(f'\nwritten: {", ".join(paths)}', file=sys.stderr)

    return run_cli(main)


# name -> (module, function taking the arguments after the name and returning the exit status, help line).
# A new command is one line here; its module is imported only when it runs.
COMMANDS: dict[str, tuple[str, str, str]] = {
    'train': ('cnnzoo.cli', 'train_main', 'train an experiment in a workdir; the same command resumes it'),
    'evaluate': ('cnnzoo.cli', 'evaluate_main', "test accuracy of a run's best, latest or STEP checkpoint"),
    'config': ('cnnzoo.cli', 'config_main', "print an experiment's resolved config as JSON; runs nothing"),
    'models': ('cnnzoo.cli', 'models_main', 'list the models with parameters and FLOPs'),
    'compare-pytorch': ('cnnzoo.cli', 'compare_pytorch_main', 'training and evaluation speed, JAX vs PyTorch'),
    'compare-accuracy': ('cnnzoo.cli', 'compare_accuracy_main',
                         'one recipe trained in JAX and in PyTorch: accuracy and time'),
    'sweep': ('cnnzoo.sweep', 'sweep_main', "train every point x seed of an experiment file's grid"),
    'cifar-to-folder': ('cnnzoo.data.commands', 'cifar_to_folder_main',
                        'a small image folder (JPEG files) from a CIFAR archive'),
    'input-benchmark': ('cnnzoo.data.commands', 'input_benchmark_main',
                        "the streaming path's images/s per worker, beside the train step's"),
    'report': ('cnnzoo.report', 'report_main', "a sweep's (or a run's) table and figures, from its files"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ['usage: cnnzoo COMMAND [ARGS ...]      (cnnzoo COMMAND --help: its flags and an example)', '',
             'commands:']
    lines += [f'  {name.ljust(width)}  {line}' for name, (_, _, line) in COMMANDS.items()]
    lines += ['', 'example:', '  cnnzoo train --config experiments/resnet20_cifar10.py --workdir runs/r20', '',
              'exit statuses:']
    statuses = (__doc__ or '').partition('Exit statuses')[2].partition('\n\n')[2]  # the docstring's table
    return '\n'.join(lines) + '\n' + statuses.rstrip().replace('``', '')


def main(argv: Sequence[str] | None = None) -> int:
    """The ``cnnzoo`` console command: ``cnnzoo COMMAND ARGS...`` runs ``COMMANDS[COMMAND]`` on ARGS."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in HELP_FLAGS:
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f'error: unknown command {argv[0]!r}; choose one of {", ".join(COMMANDS)} (cnnzoo --help)',
              file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[argv[0]]
    return getattr(importlib.import_module(module), function)(argv[1:])
