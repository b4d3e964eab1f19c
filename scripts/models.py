"""List every registered model with parameters and forward FLOPs: python scripts/models.py ['vgg*']

The same as `cnnzoo models` (--help says what is measured); the logic is in cnnzoo.models.summary.
"""
import sys

from cnnzoo.cli.models import models_main

if __name__ == '__main__':
    sys.exit(models_main(sys.argv[1:]))
