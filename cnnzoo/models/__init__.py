"""Flax (linen) models of the classic CNNs, behind one registry.

    from cnnzoo.models import create_model, list_models
    model = create_model('resnet20', num_classes=10, activation='tanh')
    variables = model.init(rng, images, train=False)
    logits = model.apply(variables, images, train=False)

Every model's ``__call__(self, x, *, train: bool)`` maps NHWC float images to float32 logits.
Importing this package registers every model.
"""

from cnnzoo.models.alexnet import AlexNet  # registers alexnet, alexnet_2012
from cnnzoo.models.googlenet import GoogLeNet  # registers googlenet
from cnnzoo.models.inception import InceptionV3  # registers inception_v3
from cnnzoo.models.layers import ACTIVATIONS, get_activation
from cnnzoo.models.registry import (
    cifar_fields,
    create_model,
    list_models,
    min_input_size,
    model_fields,
    register_model,
)
from cnnzoo.models.resnet import BasicBlock, Bottleneck, ResNet  # registers the ResNet family
from cnnzoo.models.summary import count_params
from cnnzoo.models.vgg import VGG  # registers VGG A-E

__all__ = [
    'ACTIVATIONS',
    'VGG',
    'AlexNet',
    'BasicBlock',
    'Bottleneck',
    'GoogLeNet',
    'InceptionV3',
    'ResNet',
    'cifar_fields',
    'count_params',
    'create_model',
    'get_activation',
    'list_models',
    'min_input_size',
    'model_fields',
    'register_model',
]
