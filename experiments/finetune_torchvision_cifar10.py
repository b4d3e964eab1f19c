r"""torchvision's ImageNet ResNet-18 weights fine-tuned on CIFAR-10 at 32x32, through the PyTorch bridge.

The network is cnnzoo's ``resnet18`` in torchvision's layout (ImageNet stem: 7x7/2 convolution and
3x3/2 max-pool, so the last stage runs at 1x1 on 32x32 images); every layer but the classifier
starts from torchvision's weights (``config.init.torch_checkpoint``), the 10-class head from
cnnzoo's initialisation (``config.init.reset_head``). Images are normalised with CIFAR-10's
statistics, not ImageNet's. Recipe: SGD momentum 0.9, learning rate 0.01 with cosine decay over 30
epochs, weight decay 5e-4 on kernels only, batch 128, pad-4 crop and flip.

Getting the weights (on a machine with torchvision; cnnzoo itself needs only torch to read them)::

    python -c "import torch, torchvision; torch.save(torchvision.models.resnet18(weights='DEFAULT').state_dict(), 'resnet18_torchvision.pth')"

``weights='DEFAULT'`` is ``ResNet18_Weights.IMAGENET1K_V1`` (69.758% top-1 on ImageNet, torchvision's
model table). Put the file at ``~/.cache/cnnzoo/resnet18_torchvision.pth`` or pass its path.

Run:
    python scripts/train.py --config experiments/finetune_torchvision_cifar10.py \
        --workdir runs/finetune_torchvision_cifar10 \
        --config.init.torch_checkpoint=~/.cache/cnnzoo/resnet18_torchvision.pth

Expected: not yet measured with cnnzoo (no torchvision weights on the development machines). The
reference to compare against is ``experiments/resnet18_cifar10.py`` with ``--config.model.stem=imagenet``
(the same network from random weights); pretraining should give a higher accuracy in far fewer epochs.
"""

from cnnzoo.config import default_config


def get_config():
    config = default_config()
    config.model.name = 'resnet18'  # stem='imagenet', shortcut='B': torchvision's layout
    config.init.torch_checkpoint = '~/.cache/cnnzoo/resnet18_torchvision.pth'
    config.init.reset_head = True
    config.optimizer.learning_rate = 0.01
    config.optimizer.weight_decay = 5e-4
    config.optimizer.decay_bn_and_bias = False
    config.schedule.name = 'cosine'
    config.training.num_steps = 0
    config.training.num_epochs = 30.0
    return config
