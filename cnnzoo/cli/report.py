"""``cnnzoo report``: a study's table and figures, from its run directories (:mod:`cnnzoo.studies.report`)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from cnnzoo.api import report
from cnnzoo.cli.common import Parser, run_cli

DESCRIPTION = """\
The table and figures of a sweep (cnnzoo sweep) or of one run, made only from what the runs wrote
(config.json, metrics.jsonl; sweep.json for the grid's order, failures and wall time), so it can be
made at any time, from a sweep in progress too. One row per point: the settings that differ, n
seeds, final and best test accuracy (mean ± sample std over seeds), final training loss, epochs,
training time and images/s. Prints the table and writes DIR/report.md, DIR/report.csv and
DIR/plots/*.png (+ .svg): learning curves (band: min–max over seeds) and final test error by point
(bars: ±1 std)."""

EPILOG = """\
example:
  cnnzoo report runs/he2016      (writes runs/he2016/report.md, report.csv and plots/)

exit status: 0 written, 1 a file could not be written, 2 DIR is not a directory or holds no run"""


def report_parser() -> Parser:
    parser = Parser('report', description=DESCRIPTION, epilog=EPILOG, script='report.py')
    parser.add_argument('directory', metavar='DIR',
                        help="a sweep's directory, or one run's (any directory with run directories under it)")
    parser.add_argument('--no-plots', action='store_true', help='write the table only (report.md, report.csv), '
                        'no figures')
    return parser


def report_main(argv: Sequence[str]) -> int:
    """``cnnzoo report DIR`` / ``scripts/report.py DIR``: writes the report of DIR and prints its table."""
    def main():
        args = report_parser().parse(argv)
        written = report(args.directory, plots=not args.no_plots, say=lambda line: print(line, flush=True))
        print(written.table)
        print(f'wrote {os.path.join(args.directory, "report.md")}, report.csv'
              + ('' if args.no_plots else ' and plots/'))

    return run_cli(main)
