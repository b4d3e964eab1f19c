"""``python -m cnnzoo COMMAND ...``: the ``cnnzoo`` console command (cnnzoo.cli), for when it is not on PATH."""
import sys

from cnnzoo.cli import main

sys.exit(main())
