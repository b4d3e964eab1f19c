r"""Run a study: every point of an experiment file's grid, for every seed, each in its own run directory.

    python scripts/sweep.py --config experiments/X.py --workdir runs/X [--seeds 0,1,2] \
        [--only GLOB[,GLOB]] [--list] [--config.KEY=VALUE ...]

Kept short on purpose: the logic is in cnnzoo.studies.sweep (its docstring describes the grid form).
"""
import sys

from cnnzoo.cli.sweep import sweep_main

if __name__ == '__main__':
    sys.exit(sweep_main(sys.argv[1:]))
