"""Image decoding and the host-side transforms of the streaming path (PIL and numpy, no JAX).

The streaming path (:mod:`cnnzoo.data.streaming`) decodes each image in a grain worker process and
brings it to the batch's fixed size there; what can run on the device (normalisation, the CIFAR
presets' crops, flips and colour changes) still runs inside the jitted step.

The ImageNet transforms follow torchvision's definitions exactly, so that a torchvision checkpoint
sees in cnnzoo the pixels it sees in PyTorch (``cnnzoo.torch.pipeline`` applies the same presets on
the PyTorch side):

- training, ``RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3))`` and a horizontal flip
  with probability 0.5: ten tries at a crop of uniform area fraction and log-uniform aspect ratio
  that fits the image, else a central crop clamped to the ratio range; then a bilinear resize of
  the crop to ``size`` x ``size`` (Szegedy et al. 2015's "Inception" crop, as torchvision codes it);
- evaluation, ``Resize(round(size / 0.875))`` (the shorter side to 256 for 224, 342 for 299; the
  longer side scaled and truncated, as torchvision does) and ``CenterCrop(size)`` (the offset
  rounded half to even, as Python's ``round``).

Resizing is PIL's bilinear filter with its antialiasing support (torchvision's for PIL images).
Grey and palette images become RGB (the grey level in all three channels), so every source gives
``(H, W, 3)`` uint8.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnnzoo.errors import DataError, first_line

# torchvision's ImageNet statistics (per channel, images in [0, 1]), used with every streamed set.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
EVAL_CROP_FRACTION = 0.875  # 224 of 256


def decode(data, where: str = 'image') -> Image.Image:
    """An RGB PIL image from encoded bytes (JPEG, PNG, ...) or a uint8 array (H, W[, C]).

    An image that cannot be decoded is a one-line :class:`DataError` naming ``where``.
    """
    if isinstance(data, np.ndarray):
        array = data[..., 0] if data.ndim == 3 and data.shape[-1] == 1 else data
        image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    else:
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise DataError(f'cannot decode {where}: {first_line(e, typed=True)}; '
                            'remove or replace the file') from None
    return image if image.mode == 'RGB' else image.convert('RGB')


def to_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.uint8).reshape(image.height, image.width, 3)


def resize(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.BILINEAR)


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    """The shorter side to ``size``, the longer scaled by the same factor and truncated
    (torchvision's ``Resize(size)``)."""
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    if short == size:
        return image
    new_long = int(size * long / short)
    return resize(image, *((size, new_long) if w <= h else (new_long, size)))


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The central ``size`` x ``size`` window (torchvision's ``CenterCrop``; an image smaller than
    the window is padded with zeros first, as torchvision does)."""
    w, h = image.size
    if w < size or h < size:
        padded = Image.new('RGB', (max(w, size), max(h, size)))
        padded.paste(image, ((max(w, size) - w) // 2, (max(h, size) - h) // 2))
        image, (w, h) = padded, padded.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def random_resized_crop_box(rng: np.random.Generator, width: int, height: int,
                            scale=RRC_SCALE, ratio=RRC_RATIO) -> tuple[int, int, int, int]:
    """``(top, left, crop_height, crop_width)`` of torchvision's ``RandomResizedCrop.get_params``,
    drawn from ``rng``: see the module docstring."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop_flip(image: Image.Image, rng: np.random.Generator, size: int) -> Image.Image:
    top, left, h, w = random_resized_crop_box(rng, *image.size)
    image = resize(image.crop((left, top, left + w, top + h)), size, size)
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


def eval_resize(size: int) -> int:
    """The shorter side before the centre crop: 256 for 224, 342 for 299."""
    return int(round(size / EVAL_CROP_FRACTION))
