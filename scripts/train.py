"""Train an experiment: python scripts/train.py --config experiments/X.py --workdir runs/X [--config.K=V ...]

Kept short on purpose: the logic is in cnnzoo.loop (see cnnzoo.cli for the flags).
"""
import sys

from cnnzoo.cli import train_main

if __name__ == '__main__':
    sys.exit(train_main(sys.argv[1:]))
