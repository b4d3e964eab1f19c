"""List every registered model with parameters and forward FLOPs at 32x32 and 224x224.

    python scripts/models.py [PATTERN]        e.g. python scripts/models.py 'vgg*'

FLOPs are XLA's HLO cost analysis of one eval-mode forward pass (a multiply-add counts 2),
measured at 10 classes for 32x32 and 1000 classes for 224x224; nothing is run.
"""
import sys

from cnnzoo.models import list_models
from cnnzoo.models.summary import markdown_table, summary_rows

if __name__ == '__main__':
    if any(a in ('-h', '--help') for a in sys.argv[1:]):
        print(__doc__.strip())
        sys.exit(0)
    names = list_models(sys.argv[1] if len(sys.argv) > 1 else None)
    if not names:
        sys.exit(f'error: no model matches {sys.argv[1]!r}; known: {", ".join(list_models())}')
    print(markdown_table(summary_rows(names)))
