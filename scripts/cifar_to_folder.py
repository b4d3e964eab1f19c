"""A small image folder from a CIFAR archive: python scripts/cifar_to_folder.py --archive A --out DIR

The same as `cnnzoo cifar-to-folder` (--help lists the flags); the logic is in cnnzoo.data.sources.
"""
import sys

from cnnzoo.cli.data import cifar_to_folder_main

if __name__ == '__main__':
    sys.exit(cifar_to_folder_main(sys.argv[1:]))
