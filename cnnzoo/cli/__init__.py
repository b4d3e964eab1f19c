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
             dataset, a --workdir that is a file or holds no run to evaluate (ConfigError, DataError)
    75       a process of a multi-process run was lost (died, or silent for --heartbeat-timeout
             seconds) or the run stopped moving (no progress for --stall-timeout seconds); the
             processes stopped with the last complete checkpoint kept: run the same commands
             again (cnnzoo.run.supervise)
    128 + N  stopped by signal N after saving a checkpoint: 143 for SIGTERM, 130 for SIGINT
             (Ctrl-C), the status a shell gives a process killed by that signal, which schedulers
             read as "killed, requeue"; run the same command to resume

Errors are one line on stderr (``error: ...``); set ``CNNZOO_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from cnnzoo.cli.common import HELP_FLAGS

# name -> (module, function taking the arguments after the name and returning the exit status, help line).
# A new command is one line here; its module is imported only when it runs.
COMMANDS: dict[str, tuple[str, str, str]] = {
    'train': ('cnnzoo.cli.train', 'train_main', 'train an experiment in a workdir; the same command resumes it'),
    'evaluate': ('cnnzoo.cli.evaluate', 'evaluate_main', "test accuracy of a run's best, latest or STEP checkpoint"),
    'config': ('cnnzoo.cli.config', 'config_main', "print an experiment's resolved config as JSON; runs nothing"),
    'models': ('cnnzoo.cli.models', 'models_main', 'list the models with parameters and FLOPs'),
    'compare-pytorch': ('cnnzoo.cli.bench', 'compare_pytorch_main', 'training and evaluation speed, JAX vs PyTorch'),
    'compare-accuracy': ('cnnzoo.cli.bench', 'compare_accuracy_main',
                         'one recipe trained in JAX and in PyTorch: accuracy and time'),
    'sweep': ('cnnzoo.cli.sweep', 'sweep_main', "train every point x seed of an experiment file's grid"),
    'cifar-to-folder': ('cnnzoo.cli.data', 'cifar_to_folder_main',
                        'a small image folder (JPEG files) from a CIFAR archive'),
    'input-benchmark': ('cnnzoo.cli.data', 'input_benchmark_main',
                        "the streaming path's images/s per worker, beside the train step's"),
    'report': ('cnnzoo.cli.report', 'report_main', "a sweep's (or a run's) table and figures, from its files"),
}


def usage() -> str:
    """The text of ``cnnzoo --help``: every command with its one-line purpose, and the exit statuses."""
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
