"""``cnnzoo train``: flags, the up-front checks, joining a multi-process run, then the loop."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cnnzoo.cli.common import HELP_FLAGS, checked, exit_status, run_cli, split_flags, split_switches, wants_help
from cnnzoo.config import apply_overrides, load_config_file, to_json
from cnnzoo.errors import ConfigError

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
  --heartbeat-timeout S    a process silent this long is lost: the others stop with one line and
                       exit status 75, the last complete checkpoint kept (default 30)
  --stall-timeout S    a process that made no progress this long (no step, evaluation batch or save
                       finished; a process of the run alive but stuck) stops with one line and exit
                       status 75, the last complete checkpoint kept; counted from its first step
                       (default 600; 0: never)

example:
  cnnzoo train --config experiments/resnet20_cifar10.py --workdir runs/r20 --config.training.num_epochs=1
  cnnzoo train --config experiments/resnet20_cifar10.py --config.model.name=plain20 --dry-run

exit status: 0 done, 1 the run failed, 2 bad input, 128+N stopped by signal N after saving
(143 SIGTERM, 130 Ctrl-C: run the same command to resume), 75 a process of a multi-process run
was lost or the run stopped moving (run the same commands again to resume)
"""


# In a process of a multi-process run, a stop signal repeated within this many seconds is the same
# stop: a scheduler that signals every process reaches the training both directly and through its
# supervising parent (cnnzoo.run.supervise), which forwards what it receives.
SAME_STOP_WITHIN_S = 2.0

DISTRIBUTED_FLAGS = {'coordinator', 'num-processes', 'process-id', 'distributed-timeout', 'heartbeat-timeout',
                     'stall-timeout'}


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
    from cnnzoo.run.distributed import initialize

    initialize(**distributed_args(flags))
    return True


def _whole_number(flags: dict, name: str, default=None):
    """The flag ``--name`` as an int (``default`` when not given); a one-line ConfigError otherwise."""
    text = flags.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f'--{name} {text!r}: expected a whole number') from None


def stall_timeout(flags: dict) -> int:
    """``--stall-timeout``'s seconds (:data:`cnnzoo.run.supervise.DEFAULT_STALL_S` when not given; 0
    turns the check off), checked (a one-line ConfigError)."""
    from cnnzoo.run.supervise import DEFAULT_STALL_S

    seconds = _whole_number(flags, 'stall-timeout', DEFAULT_STALL_S)
    if seconds < 0:
        raise ConfigError(f'--stall-timeout {seconds}: must be 0 (never) or a number of seconds')
    return seconds


def distributed_args(flags: dict) -> dict:
    """The keyword arguments of :func:`cnnzoo.run.distributed.initialize` from train's flags,
    checked (a one-line ConfigError)."""
    from cnnzoo.run.distributed import DEFAULT_HEARTBEAT_S, DEFAULT_TIMEOUT_S, check_flags

    def number(name, default=None):
        return _whole_number(flags, name, default)

    args = dict(coordinator=flags.get('coordinator'), num_processes=number('num-processes'),
                process_id=number('process-id'), timeout_s=number('distributed-timeout', DEFAULT_TIMEOUT_S),
                heartbeat_s=number('heartbeat-timeout', DEFAULT_HEARTBEAT_S))
    check_flags(**args)
    return args


def train_help(argv: Sequence[str]) -> str:
    """Train's usage, every schema key, and the fields of the model that ``argv`` names, if any."""
    from cnnzoo.cli.help import model_help, schema_help

    _, rest = split_switches([a for a in argv if a not in HELP_FLAGS], {'extend', 'dry-run', 'distributed'})
    flags, overrides = split_flags(rest, {'config', 'workdir'} | DISTRIBUTED_FLAGS)
    named = [value for key, value in overrides if key == 'model.name']
    if 'config' in flags:
        named.append(apply_overrides(load_config_file(flags['config']), overrides).model.name)
    parts = [USAGE_TRAIN, schema_help(named[-1] if named else None)]
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
        if distributed or 'distributed' in switches:
            args, stall_s = distributed_args(distributed), stall_timeout(distributed)
            from cnnzoo.run.signals import StopSignals
            from cnnzoo.run.supervise import can_supervise, die_with_parent, is_supervised_child, supervise

            if can_supervise(argv):  # a lost process must end the others in one line (cnnzoo.run.supervise)
                return supervise(process_id=args['process_id'], num_processes=args['num_processes'],
                                 workdir=workdir, stall_s=stall_s)
            if is_supervised_child():
                die_with_parent()
                StopSignals.same_stop_within_s = SAME_STOP_WITHIN_S
        from cnnzoo.run.validation import check_config, check_devices

        # A bad value is refused before the training stack is imported, and before a process waits
        # for the others of a multi-process run; the device count is known once it has joined.
        check_config(config, devices=False)
        join_processes(distributed, auto='distributed' in switches)
        check_devices(config)
        from cnnzoo.run.loop import train_and_evaluate

        return exit_status(train_and_evaluate(config, workdir, extend='extend' in switches))

    return run_cli(main)
