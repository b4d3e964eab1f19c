"""The PyTorch twin of any cnnzoo model: ``create_torch_model(name, num_classes=..., **fields)``.

A twin is built from the same data as the flax module (the registry entry plus ``fields``), has
torchvision's module names, and computes the same function: load it with
``twin.load_state_dict(state_dict_to_torch(flax_to_torch(variables, model)))``.

Auxiliary classifiers: where the flax model sows auxiliary logits into the ``'aux_outputs'``
collection in training (GoogLeNet, Inception v3), its twin returns torchvision's namedtuple of the
main and auxiliary logits in train mode, and the logits alone in eval mode;
:func:`split_outputs` takes either apart the same way.
"""

from __future__ import annotations

from cnnzoo.models import create_model
from cnnzoo.models.alexnet import AlexNet as FlaxAlexNet
from cnnzoo.models.googlenet import GoogLeNet as FlaxGoogLeNet
from cnnzoo.models.inception import InceptionV3 as FlaxInceptionV3
from cnnzoo.models.resnet import ResNet as FlaxResNet
from cnnzoo.models.vgg import VGG as FlaxVGG
from cnnzoo.torch import alexnet, googlenet, inception, resnet, vgg

# flax Module class -> function building its twin from an unbound instance. Adding a family: its
# module file in cnnzoo/torch/, one entry here and one key map in cnnzoo/torch/keymaps.py.
TWINS = {
    FlaxResNet: resnet.from_flax,
    FlaxVGG: vgg.from_flax,
    FlaxAlexNet: alexnet.from_flax,
    FlaxGoogLeNet: googlenet.from_flax,
    FlaxInceptionV3: inception.from_flax,
}


def torch_twin(model):
    """A new ``torch.nn.Module`` twin (fresh weights) of the unbound cnnzoo module ``model``."""
    for cls, build in TWINS.items():
        if isinstance(model, cls):
            return build(model)
    known = ', '.join(cls.__name__ for cls in TWINS)
    raise ValueError(f'no PyTorch twin for {type(model).__name__} models yet; families with one: {known}')


def create_torch_model(name: str, *, num_classes: int, **fields):
    """The twin of ``cnnzoo.models.create_model(name, num_classes=num_classes, **fields)``.

    Names and fields are checked by the cnnzoo registry (same one-line errors); ``dtype`` is
    accepted and ignored (twins compute in float32).
    """
    return torch_twin(create_model(name, num_classes=num_classes, **fields))


def load_variables(twin, variables, model) -> None:
    """Copies cnnzoo ``variables`` of ``model`` into its ``twin`` (``load_state_dict(strict=True)``)."""
    import numpy as np
    import torch

    from cnnzoo.torch.convert import flax_to_torch

    state_dict = {k: torch.from_numpy(np.array(v)) for k, v in flax_to_torch(variables, model).items()}
    twin.load_state_dict(state_dict, strict=True)


def twin_variables(twin, model, *, template=None) -> dict:
    """The cnnzoo variables (numpy) holding the ``twin``'s current weights and BN statistics.

    ``template``: the model's variables or their shapes, if at hand (see ``torch_to_flax``).
    """
    from cnnzoo.torch.convert import torch_to_flax

    return torch_to_flax(twin.state_dict(), model, template=template)


def twin_loss(twin, output, labels, loss_fn=None, *, dtype=None):
    """cnnzoo's training loss of a twin's forward ``output``: the batch mean of ``loss_fn`` (per example;
    default cross-entropy; :func:`cnnzoo.torch.losses.make_torch_loss` gives a config's criterion) of
    the logits plus each auxiliary head's, times its weight (as ``cnnzoo.training.aux_loss``); logits
    are cast to ``dtype`` (default float32) first."""
    import torch

    from cnnzoo.torch.losses import cross_entropy

    loss_fn = loss_fn or cross_entropy
    logits, aux = split_outputs(twin, output)
    dtype = dtype or torch.float32
    loss = loss_fn(logits.to(dtype), labels).mean()
    for aux_logits, weight in aux.values():
        loss = loss + weight * loss_fn(aux_logits.to(dtype), labels).mean()
    return loss, logits


def split_outputs(twin, output):
    """``(logits, {name: (aux_logits, loss_weight)})`` of a twin's forward ``output``.

    ``name`` is where the flax model sows the same head's logits in its ``'aux_outputs'``
    collection (``'aux1/output'``: ``updates['aux_outputs']['aux1']['output']``), and the weight its
    loss adds ``weight * cross_entropy`` with. The dict is empty in eval mode and for models without
    auxiliary heads.
    """
    if not isinstance(output, tuple):
        return output, {}
    heads = twin.aux_heads
    return output.logits, {heads[field][0]: (getattr(output, field), heads[field][1])
                           for field in output._fields if field != 'logits'}
