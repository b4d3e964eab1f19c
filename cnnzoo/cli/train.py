"""``cnnzoo train``: flags, the up-front checks, joining a multi-process run, then :func:`cnnzoo.api.train`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cnnzoo.api import get_config, train
from cnnzoo.cli.common import Parser, checked, exit_status, process_hooks, run_cli, whole_number
from cnnzoo.config import to_json
from cnnzoo.errors import ConfigError

DESCRIPTION = """\
Trains the config of an experiment file in DIR; the same command resumes it from its last checkpoint."""

DISTRIBUTED = """\
every process runs the same command with its own --process-id; the mesh spans all their devices;
process 0 writes the files (README, "More devices and machines")"""

EPILOG = """\
examples:
  cnnzoo train --config experiments/resnet20_cifar10.py --workdir runs/r20 --config.training.num_epochs=1
  cnnzoo train --config experiments/resnet20_cifar10.py --config.model.name=plain20 --dry-run

exit status: 0 done, 1 the run failed, 2 bad input, 128+N stopped by signal N after saving
(143 SIGTERM, 130 Ctrl-C: run the same command to resume), 75 a process of a multi-process run
was lost or the run stopped moving (run the same commands again to resume)"""

# In a process of a multi-process run, a stop signal repeated within this many seconds is the same
# stop: a scheduler that signals every process reaches the training both directly and through its
# supervising parent (cnnzoo.run.supervise), which forwards what it receives.
SAME_STOP_WITHIN_S = 2.0

# The flags that make a run one process of several (as does --distributed); any of them given joins.
DISTRIBUTED_FLAGS = ('coordinator', 'num_processes', 'process_id', 'distributed_timeout', 'heartbeat_timeout',
                     'stall_timeout')


def train_parser() -> Parser:
    """Train's flags, their help, and the schema's and the named model's help after them."""
    from cnnzoo.run.distributed import DEFAULT_HEARTBEAT_S, DEFAULT_TIMEOUT_S
    from cnnzoo.run.supervise import DEFAULT_STALL_S

    parser = Parser('train', description=DESCRIPTION, epilog=EPILOG, script='train.py',
                    more_help=keys_and_model_help,
                    help="this help; with --config.model.name=NAME or --config FILE, also the model's fields")
    parser.add_argument('--config', metavar='FILE', required=True,
                        help='an experiment file defining get_config() (experiments/*.py)')
    parser.add_argument('--workdir', metavar='DIR', help="the run's directory: config.json, metrics.jsonl, tb/, "
                        'checkpoints/, best/ (required, except with --dry-run)')
    parser.add_argument('--extend', action='store_true',
                        help='let a run go on with a longer training.num_steps or num_epochs than it had')
    parser.add_argument('--dry-run', action='store_true',
                        help='check the config and print it resolved, as JSON; nothing is read, trained or '
                             'written (--workdir not needed; the same as: cnnzoo config FILE ...)')
    parser.add_overrides('set any key below (a Python literal, else a string)')
    group = parser.add_argument_group('several processes or machines', DISTRIBUTED)
    group.add_argument('--coordinator', metavar='HOST:PORT',
                       help="address of process 0's coordinator service (any free port on its machine)")
    group.add_argument('--num-processes', metavar='N', type=whole_number, help='how many processes take part')
    group.add_argument('--process-id', metavar='I', type=whole_number, help="this process's number, 0..N-1")
    group.add_argument('--distributed', action='store_true',
                       help="join with JAX's auto-detection instead (SLURM, Open MPI, TPU pods)")
    group.add_argument('--distributed-timeout', metavar='S', type=whole_number,
                       help=f'seconds to wait for the others before giving up (default {DEFAULT_TIMEOUT_S})')
    group.add_argument('--heartbeat-timeout', metavar='S', type=whole_number,
                       help='a process silent this long is lost: the others stop with one line and exit status '
                            f'75, the last complete checkpoint kept (default {DEFAULT_HEARTBEAT_S})')
    group.add_argument('--stall-timeout', metavar='S', type=whole_number,
                       help='a process that made no progress this long (no step, evaluation batch or save '
                            'finished; a process of the run alive but stuck) stops with one line and exit status '
                            '75, the last complete checkpoint kept; counted from its first step '
                            f'(default {DEFAULT_STALL_S}; 0: never)')
    return parser


def parse_train_args(argv: Sequence[str]) -> tuple:
    """``(config, args)`` from train's arguments: the experiment's config with the overrides applied,
    and the parsed flags (``args.workdir``, ``args.dry_run``, the distributed flags, ...)."""
    args = train_parser().parse(argv)
    if args.workdir is None and not args.dry_run:
        raise ConfigError('--workdir is required (cnnzoo train --help)')
    return get_config(args.config, text_overrides=args.overrides), args


def keys_and_model_help(args: argparse.Namespace) -> str:
    """Every schema key, and the fields of the model that the arguments name, if any."""
    from cnnzoo.cli.help import model_help, schema_help

    named = [value for key, value in args.overrides if key == 'model.name']
    if args.config is not None:
        named.append(get_config(args.config, text_overrides=args.overrides).model.name)
    parts = [schema_help(named[-1] if named else None)]
    if named:
        parts.append(model_help(named[-1]))
    return '\n\n'.join(parts)


def joins(args: argparse.Namespace) -> bool:
    """Whether the run is one process of several: a distributed flag given, or --distributed."""
    return args.distributed or any(getattr(args, name) is not None for name in DISTRIBUTED_FLAGS)


def join_processes(args: argparse.Namespace) -> bool:
    """``jax.distributed.initialize`` from train's flags; False when the run is a single process."""
    if not joins(args):
        return False
    from cnnzoo.run.distributed import initialize

    initialize(**distributed_args(args))
    return True


def stall_timeout(args: argparse.Namespace) -> int:
    """``--stall-timeout``'s seconds (:data:`cnnzoo.run.supervise.DEFAULT_STALL_S` when not given; 0
    turns the check off), checked (a one-line ConfigError)."""
    from cnnzoo.run.supervise import DEFAULT_STALL_S

    seconds = DEFAULT_STALL_S if args.stall_timeout is None else args.stall_timeout
    if seconds < 0:
        raise ConfigError(f'--stall-timeout {seconds}: must be 0 (never) or a number of seconds')
    return seconds


def distributed_args(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`cnnzoo.run.distributed.initialize` from train's flags,
    checked (a one-line ConfigError)."""
    from cnnzoo.run.distributed import DEFAULT_HEARTBEAT_S, DEFAULT_TIMEOUT_S, check_flags

    def given(value, default):
        return default if value is None else value

    kwargs = {'coordinator': args.coordinator, 'num_processes': args.num_processes, 'process_id': args.process_id,
              'timeout_s': given(args.distributed_timeout, DEFAULT_TIMEOUT_S),
              'heartbeat_s': given(args.heartbeat_timeout, DEFAULT_HEARTBEAT_S)}
    check_flags(**kwargs)
    return kwargs


def train_main(argv: Sequence[str]) -> int:
    """``cnnzoo train`` / ``scripts/train.py``: flags, checks, joining the others, then
    :func:`cnnzoo.api.train`; returns the exit status."""
    def main():
        config, args = parse_train_args(argv)
        if args.dry_run:
            print(to_json(checked(config)))
            print('dry run: the config is good; nothing was read, trained or written', file=sys.stderr)
            return 0
        if config.training.deterministic:  # XLA reads its flags when JAX starts: before anything does
            from cnnzoo.run.determinism import enable_deterministic_gpu_ops

            enable_deterministic_gpu_ops()
        if joins(args):
            kwargs, stall_s = distributed_args(args), stall_timeout(args)
            from cnnzoo.run.signals import StopSignals
            from cnnzoo.run.supervise import (
                can_supervise,
                die_with_parent,
                is_supervised_child,
                supervise,
            )

            if can_supervise(argv):  # a lost process must end the others in one line (cnnzoo.run.supervise)
                return supervise(process_id=kwargs['process_id'], num_processes=kwargs['num_processes'],
                                 workdir=args.workdir, stall_s=stall_s)
            if is_supervised_child():
                die_with_parent()
                StopSignals.same_stop_within_s = SAME_STOP_WITHIN_S
        process_hooks()
        # The config is checked before a process waits for the others of a multi-process run, the
        # device count once it has joined (train calls join between the two).
        summary = train(config, args.workdir, extend=args.extend,
                        join=(lambda: join_processes(args)) if joins(args) else None)
        return exit_status(summary.stopped_by)

    return run_cli(main)
