"""Augmentations by name (``config.data.augment``) and the two ways of applying them
(``config.data.augment_mode``).

A preset is a function ``(keys, images, *, mean) -> images`` of float images in [0, 1], registered
in :data:`AUGMENTATIONS`; ``keys`` are the four keys of :func:`cnnzoo.data.augmentation.preset_keys`
(crop and flip, colour jitter, blur, cutout), always split the same way so that a preset's draws do
not depend on the others. The operations themselves are in :mod:`cnnzoo.data.augmentation` (imported
inside the presets: ``cnnzoo train --help`` reads this registry without starting JAX). Each entry's
``meta`` says

- ``expand``: the copies ``augment_mode='expand'`` adds to the originals, each drawn with the named
  preset (absent: the preset cannot expand a set);
- ``host``: the preset works on the host, in the streaming path (cnnzoo.data.streaming), and leaves
  the device only the scaling.
"""

from __future__ import annotations

from cnnzoo.registry import Registry

AUGMENTATIONS = Registry('augmentation', 'data.augment')
AUGMENT_MODES = Registry('augmentation mode', 'data.augment_mode')

AUGMENT_MODES.add('online', 'online', help='fresh draws at every step')
AUGMENT_MODES.add('expand', 'expand', help='the training set becomes the originals plus copies augmented once '
                  'from the seed (crop_flip: 100k CIFAR images, crop_flip_color_blur: 150k), trained on '
                  'without further draws; an epoch is a pass over the expanded set')


@AUGMENTATIONS.register('none', expand=())
def none(keys, x, *, mean):
    """no augmentation: the images scaled to [0, 1]"""
    return x


@AUGMENTATIONS.register('crop_flip', expand=('crop_flip',))
def crop_flip(keys, x, *, mean):
    """zero-pad 4 pixels, a random crop back to size, a horizontal flip with probability 0.5 (He et al. 2016)"""
    from cnnzoo.data.augmentation import random_crop_flip

    return random_crop_flip(keys[0], x)


# crop_flip_color_blur expands as the student report of experiments/resnet18_ablation.py did: a
# crop+flip copy and a second copy that also has colour change and blur (150k images from CIFAR's 50k).
@AUGMENTATIONS.register('crop_flip_color_blur', expand=('crop_flip', 'crop_flip_color_blur'))
def crop_flip_color_blur(keys, x, *, mean):
    """crop_flip, then colour jitter (0.4) and a Gaussian blur with probability 0.5"""
    from cnnzoo.data.augmentation import color_jitter, gaussian_blur, random_crop_flip

    return gaussian_blur(keys[2], color_jitter(keys[1], random_crop_flip(keys[0], x)))


@AUGMENTATIONS.register('cutout', expand=('cutout',))
def cutout(keys, x, *, mean):
    """crop_flip, then one 16x16 square set to the dataset mean (DeVries & Taylor 2017)"""
    from cnnzoo.data.augmentation import cutout as cut
    from cnnzoo.data.augmentation import random_crop_flip

    return cut(keys[3], random_crop_flip(keys[0], x), mean)


@AUGMENTATIONS.register('imagenet', host=True)
def imagenet(keys, x, *, mean):
    """torchvision's ImageNet crops (random-resized crop and flip; resize and centre crop to evaluate), on the host"""
    return x
