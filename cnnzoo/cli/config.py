"""``cnnzoo config``: the resolved config of an experiment file, as JSON; runs nothing."""

from __future__ import annotations

from collections.abc import Sequence

from cnnzoo.cli.common import checked, run_cli, split_flags, wants_help
from cnnzoo.config import apply_overrides, default_config, load_config_file, to_json

USAGE_CONFIG = """\
usage: cnnzoo config [EXPERIMENT.py] [--config.KEY=VALUE ...]

Prints the config an experiment file and overrides resolve to, as JSON (the schema's defaults
without a file), after the same checks a run makes first; nothing is read, trained or written.
A bad key or value is one line and exit status 2. `cnnzoo train --help` lists the keys.

example:
  cnnzoo config experiments/he2016_cifar10.py --config.model.name=plain56 --config.schedule.ratio=5:3:2
"""


def config_main(argv: Sequence[str]) -> int:
    """``cnnzoo config``: the resolved config of an experiment and its overrides, checked, as JSON;
    returns the exit status."""
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
