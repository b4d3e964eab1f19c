"""Train an experiment: python scripts/train.py --config experiments/X.py --workdir runs/X [--config.K=V ...]

The same as `cnnzoo train` (--help lists every flag and config key); the logic is in cnnzoo.run.loop.
"""
import sys

from cnnzoo.cli.train import train_main

if __name__ == '__main__':
    sys.exit(train_main(sys.argv[1:]))
