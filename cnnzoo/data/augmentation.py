"""Augmentation on the device: pure ``jax.numpy`` functions of ``(rng, uint8 batch)``, run inside jit.

The presets (registered by name in :data:`cnnzoo.data.presets.AUGMENTATIONS`, composed of the
operations here):

- ``'none'``: the images scaled to [0, 1].
- ``'crop_flip'``: zero-pad 4 pixels, a random 32x32 crop, a horizontal flip with probability 0.5
  (He et al. 2016 §4.2; the standard CIFAR augmentation).
- ``'crop_flip_color_blur'``: ``crop_flip``, then colour jitter and Gaussian blur. Jitter as
  torchvision's ``ColorJitter(0.4, 0.4, 0.4)`` but in a fixed order: brightness (x * b), contrast
  (blend with the image's mean grey level), saturation (blend with each pixel's grey level), each
  factor uniform in [0.6, 1.4], clipped to [0, 1]. Blur with probability 0.5: a separable 3x3
  Gaussian kernel, sigma uniform in [0.1, 2.0], edges replicated.
- ``'cutout'``: ``crop_flip``, then one 16x16 square (clipped at the border) at a uniformly random
  centre set to the dataset mean, i.e. to zero after normalisation, as in DeVries & Taylor (2017),
  whose code cuts the normalised tensor.

- ``'imagenet'``: torchvision's ImageNet training crop (random-resized crop, scale 0.08-1, ratio
  3/4-4/3, and a flip) and its evaluation resize and centre crop, done on the host by the streaming
  path (``cnnzoo.data.images``); on the device the images are only scaled to [0, 1].

Two ways to use a preset (``config.data.augment_mode``): ``'online'`` draws fresh augmentations at
every step; ``'expand'`` draws them once and trains on a fixed, larger set
(:func:`cnnzoo.data.pipeline.expansion`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

GREY = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as torchvision (numpy: importing starts no backend)


def to_float(images):
    return images.astype(jnp.float32) / 255.0


def normalize(images, mean, std):
    """Per-channel ``(x - mean) / std`` on float images in [0, 1]."""
    return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def crop_flip_draws(rng, batch: int, pad: int = 4):
    """The random numbers of ``random_crop_flip(rng, ...)``: offsets (B, 2) in [0, 2 pad], flips (B,)."""
    crop_rng, flip_rng = jax.random.split(rng)
    offsets = jax.random.randint(crop_rng, (batch, 2), 0, 2 * pad + 1)
    flips = jax.random.bernoulli(flip_rng, 0.5, (batch, 1, 1, 1)).reshape(batch)
    return offsets, flips


def random_crop_flip(rng, images, pad: int = 4):
    """Zero-pad ``pad`` pixels, crop back to size at a random offset, flip half of the images."""
    b, h, w, _ = images.shape
    offsets, flips = crop_flip_draws(rng, b, pad)
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))  # noqa: E731
    cropped = jax.vmap(crop)(padded, offsets)
    return jnp.where(flips[:, None, None, None], cropped[:, :, ::-1, :], cropped)


def color_jitter(rng, x, strength: float = 0.4):
    b = x.shape[0]
    factors = jax.random.uniform(rng, (3, b, 1, 1, 1), minval=1 - strength, maxval=1 + strength)
    x = jnp.clip(x * factors[0], 0.0, 1.0)
    grey = jnp.einsum('bhwc,c->bhw', x, GREY)[..., None]
    x = jnp.clip((x - grey.mean(axis=(1, 2), keepdims=True)) * factors[1]
                 + grey.mean(axis=(1, 2), keepdims=True), 0.0, 1.0)
    grey = jnp.einsum('bhwc,c->bhw', x, GREY)[..., None]
    return jnp.clip((x - grey) * factors[2] + grey, 0.0, 1.0)


def gaussian_blur(rng, x, prob: float = 0.5, sigma_range=(0.1, 2.0)):
    b = x.shape[0]
    sigma_rng, apply_rng = jax.random.split(rng)
    sigma = jax.random.uniform(sigma_rng, (b,), minval=sigma_range[0], maxval=sigma_range[1])
    taps = jnp.exp(-jnp.array([1.0, 0.0, 1.0])[None, :] / (2 * sigma[:, None] ** 2))
    taps = (taps / taps.sum(axis=1, keepdims=True))[:, :, None, None, None]  # (B, 3, 1, 1, 1)
    p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='edge')
    h, w = x.shape[1:3]
    rows = taps[:, 0] * p[:, 0:h, :, :] + taps[:, 1] * p[:, 1:h + 1, :, :] + taps[:, 2] * p[:, 2:h + 2, :, :]
    blurred = (taps[:, 0] * rows[:, :, 0:w, :] + taps[:, 1] * rows[:, :, 1:w + 1, :]
               + taps[:, 2] * rows[:, :, 2:w + 2, :])
    apply = jax.random.bernoulli(apply_rng, prob, (b, 1, 1, 1))
    return jnp.where(apply, blurred, x)


def cutout(rng, x, fill, size: int = 16):
    b, h, w, _ = x.shape
    centre = jax.random.randint(rng, (b, 2), 0, jnp.array([h, w]))
    ys, xs = jnp.arange(h), jnp.arange(w)
    in_y = (ys[None, :] >= centre[:, :1] - size // 2) & (ys[None, :] < centre[:, :1] + size - size // 2)
    in_x = (xs[None, :] >= centre[:, 1:] - size // 2) & (xs[None, :] < centre[:, 1:] + size - size // 2)
    mask = (in_y[:, :, None] & in_x[:, None, :])[..., None]
    return jnp.where(mask, jnp.asarray(fill, x.dtype), x)


def preset_keys(rng):
    """The keys ``augment`` gives its stages: crop and flip, colour jitter, blur, cutout."""
    return jax.random.split(rng, 4)
