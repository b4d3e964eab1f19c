"""Test accuracy of a run's checkpoint: python scripts/evaluate.py --workdir runs/X [--checkpoint best|latest|STEP]

The same as `cnnzoo evaluate` (--help lists the flags); the logic is in cnnzoo.run.evaluate.
"""
import sys

from cnnzoo.cli.evaluate import evaluate_main

if __name__ == '__main__':
    sys.exit(evaluate_main(sys.argv[1:]))
