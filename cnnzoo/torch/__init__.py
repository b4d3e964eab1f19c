"""The PyTorch bridge: twins of cnnzoo models in PyTorch, and weight converters both ways.

    from cnnzoo.torch import create_torch_model, flax_to_torch, torch_to_flax
    twin = create_torch_model('resnet18', num_classes=1000)        # torchvision's ResNet-18
    variables = torch_to_flax(twin.state_dict(), create_model('resnet18', num_classes=1000))

Importing this package does not import torch: the converters (:mod:`cnnzoo.torch.convert`) work
on numpy arrays, so a torch ``state_dict`` saved as numpy converts without torch installed. The
twins (``create_torch_model``, ``torch_twin``, ``load_variables``, ``twin_variables``,
``split_outputs``), the criteria (``make_torch_loss``) and
``make_torch_optimizer`` import torch when first used. The rest of cnnzoo imports this package only
on demand: the comparison tools, and ``cnnzoo.run.setup`` when ``config.init.torch_checkpoint`` is set.
"""

from cnnzoo.torch.convert import (
    ConversionError,
    flax_to_torch,
    head_layers,
    init_from_state_dict,
    load_torch_checkpoint,
    torch_to_flax,
)
from cnnzoo.torch.keymaps import KEY_MAPS, Layer, key_map

_LAZY = {
    'create_torch_model': 'cnnzoo.torch.models',
    'torch_twin': 'cnnzoo.torch.models',
    'load_variables': 'cnnzoo.torch.models',
    'twin_variables': 'cnnzoo.torch.models',
    'split_outputs': 'cnnzoo.torch.models',
    'twin_loss': 'cnnzoo.torch.models',
    'TWINS': 'cnnzoo.torch.models',
    'make_torch_optimizer': 'cnnzoo.torch.optim',
    'TORCH_OPTIMIZERS': 'cnnzoo.torch.optim',
    'make_torch_loss': 'cnnzoo.torch.losses',
    'TORCH_LOSSES': 'cnnzoo.torch.losses',
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


# The lazy names come from their table (the noqa), so the two cannot drift.
__all__ = ['KEY_MAPS', 'ConversionError', 'Layer', 'flax_to_torch', 'head_layers', 'init_from_state_dict',  # noqa: PLE0604
           'key_map', 'load_torch_checkpoint', 'torch_to_flax', *_LAZY]
