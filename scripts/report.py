"""Tabulate and plot a study: python scripts/report.py runs/X (a sweep directory or one run's).

Writes runs/X/report.md, report.csv and plots/; kept short on purpose: the logic is in cnnzoo.studies.report.
"""
import sys

from cnnzoo.cli.report import report_main

if __name__ == '__main__':
    sys.exit(report_main(sys.argv[1:]))
