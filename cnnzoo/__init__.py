"""cnnzoo: the classic convolutional networks in JAX/Flax, with one training core and the tools to
study them. From Python (a notebook) as from the shell:

    import cnnzoo

    config = cnnzoo.get_config('experiments/resnet20_cifar10.py', training={'num_epochs': 1})
    summary = cnnzoo.train(config, 'runs/r20')   # interrupting the cell saves; the same call resumes
    cnnzoo.evaluate('runs/r20')                  # the best checkpoint, on the test set
    run = cnnzoo.load('runs/r20', 'latest')      # run.model, run.variables, run.config

The names below are :mod:`cnnzoo.api`'s (the functions the ``cnnzoo`` commands run) and the errors
of :mod:`cnnzoo.errors`, imported on first use (PEP 562): ``import cnnzoo`` starts neither JAX nor
PyTorch, and the command line's ``--help`` stays instant.
"""

import importlib
from typing import TYPE_CHECKING

__all__ = ['ConfigError', 'DataError', 'Evaluation', 'LoadedRun', 'Report', 'RunError', 'SweepSummary',
           'TrainSummary', 'create_model', 'evaluate', 'evaluate_torch', 'get_config', 'list_models', 'load',
           'report', 'sweep', 'train']
_ERRORS = ('ConfigError', 'DataError', 'RunError')
_EXPORTS = {name: 'cnnzoo.errors' if name in _ERRORS else 'cnnzoo.api' for name in __all__}

if TYPE_CHECKING:  # what a type checker sees of the names imported on first use
    from cnnzoo.api import Evaluation as Evaluation
    from cnnzoo.api import LoadedRun as LoadedRun
    from cnnzoo.api import Report as Report
    from cnnzoo.api import SweepSummary as SweepSummary
    from cnnzoo.api import TrainSummary as TrainSummary
    from cnnzoo.api import create_model as create_model
    from cnnzoo.api import evaluate as evaluate
    from cnnzoo.api import evaluate_torch as evaluate_torch
    from cnnzoo.api import get_config as get_config
    from cnnzoo.api import list_models as list_models
    from cnnzoo.api import load as load
    from cnnzoo.api import report as report
    from cnnzoo.api import sweep as sweep
    from cnnzoo.api import train as train
    from cnnzoo.errors import ConfigError as ConfigError
    from cnnzoo.errors import DataError as DataError
    from cnnzoo.errors import RunError as RunError


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
