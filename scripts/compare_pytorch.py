"""Training and evaluation speed of cnnzoo models in JAX and PyTorch, side by side in one process.

    python scripts/compare_pytorch.py --models resnet20 --batch-size 128 --steps 20 --out results/cpu/r20

The same as `cnnzoo compare-pytorch` (--help lists the flags); the logic is in cnnzoo.bench.speed.
"""
import sys

from cnnzoo.cli.bench import compare_pytorch_main

if __name__ == '__main__':
    sys.exit(compare_pytorch_main(sys.argv[1:]))
