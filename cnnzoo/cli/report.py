"""``cnnzoo report``: a study's table and figures, from its run directories (:mod:`cnnzoo.studies.report`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from cnnzoo.cli.common import run_cli


def report_main(argv: Sequence[str]) -> int:
    """``scripts/report.py DIR``: writes the report of DIR and prints its table."""
    if any(a in ('-h', '--help') for a in argv) or len(argv) != 1 or argv[0].startswith('--'):
        print('usage: report.py DIR   (a sweep directory of scripts/sweep.py, or one run directory)\n'
              '  example: cnnzoo report runs/he2016   (writes runs/he2016/report.md, report.csv, plots/)',
              file=sys.stdout if argv else sys.stderr)
        return 0 if argv and argv[0] in ('-h', '--help') else 2

    def main():
        from cnnzoo.studies.report import write_report

        _, table = write_report(argv[0])
        print(table)
        print(f'wrote {os.path.join(argv[0], "report.md")}, report.csv and plots/')

    return run_cli(main)
