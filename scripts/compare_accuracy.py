r"""Same model and recipe trained in JAX (cnnzoo's loop) and in PyTorch (its twin): accuracy and time.

    python scripts/compare_accuracy.py --config experiments/resnet20_cifar10.py \
        --config.training.num_epochs=3 --out results/cpu/accuracy_resnet20_3epochs

The same as `cnnzoo compare-accuracy` (--help lists the flags); the logic is in
cnnzoo.bench.accuracy.
"""
import sys

from cnnzoo.cli.bench import compare_accuracy_main

if __name__ == '__main__':
    sys.exit(compare_accuracy_main(sys.argv[1:]))
