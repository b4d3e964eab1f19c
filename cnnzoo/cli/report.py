"""``cnnzoo report``: a study's table and figures, from its run directories (:mod:`cnnzoo.studies.report`)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from cnnzoo.cli.common import run_cli, split_switches, wants_help
from cnnzoo.errors import ConfigError

USAGE_REPORT = """\
usage: cnnzoo report DIR [--no-plots]
       (python scripts/report.py takes the same arguments)

The table and figures of a sweep (cnnzoo sweep) or of one run, made only from what the runs wrote
(config.json, metrics.jsonl; sweep.json for the grid's order, failures and wall time), so it can be
made at any time, from a sweep in progress too. One row per point: the settings that differ, n
seeds, final and best test accuracy (mean ± sample std over seeds), final training loss, epochs,
training time and images/s. Prints the table and writes DIR/report.md, DIR/report.csv and
DIR/plots/*.png (+ .svg): learning curves (band: min–max over seeds) and final test error by point
(bars: ±1 std).

  DIR           a sweep's directory, or one run's (any directory with run directories under it)
  --no-plots    write the table only (report.md, report.csv), no figures
  -h, --help    this help

example:
  cnnzoo report runs/he2016      (writes runs/he2016/report.md, report.csv and plots/)

exit status: 0 written, 1 a file could not be written, 2 DIR is not a directory or holds no run
"""

SWITCHES = {'no-plots'}  # what report_main takes beside DIR (every one is in the help above)


def report_main(argv: Sequence[str]) -> int:
    """``cnnzoo report DIR`` / ``scripts/report.py DIR``: writes the report of DIR and prints its table."""
    if wants_help(argv):
        print(USAGE_REPORT)
        return 0

    def main():
        switches, rest = split_switches(argv, SWITCHES)
        flags = [a for a in rest if a.startswith('-')]
        if flags:
            raise ConfigError(f'unknown flag {flags[0]} (cnnzoo report --help)')
        if len(rest) != 1:
            raise ConfigError('give one directory: cnnzoo report DIR (cnnzoo report --help)')
        from cnnzoo.studies.report import write_report

        _, table = write_report(rest[0], plots='no-plots' not in switches, say=lambda line: print(line, flush=True))
        print(table)
        print(f'wrote {os.path.join(rest[0], "report.md")}, report.csv'
              + ('' if 'no-plots' in switches else ' and plots/'))

    return run_cli(main)
