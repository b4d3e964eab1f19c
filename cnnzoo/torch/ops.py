"""The tensor operations the PyTorch twins train with, shared by the speed comparison
(:mod:`cnnzoo.bench.torch_variants`) and the accuracy recipe (:mod:`cnnzoo.torch.recipe`): the device,
its synchronisation, the thread count, and crop-and-flip augmentation done as cnnzoo's is."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

PAD = 4  # the zero padding of crop-and-flip, as cnnzoo.data.augmentation's


def device() -> torch.device:
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def configure_threads() -> str:
    """Gives PyTorch's CPU ops as many threads as XLA's CPU client uses: one per usable CPU."""
    n = len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return f'torch.set_num_threads({n}), the CPUs this process may use (XLA sizes its CPU pool the same way)'


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def crop_flip(images, offsets, flips):
    """uint8 (B, H, W, C) -> float32 in [0, 1]: zero-pad, crop at ``offsets`` (B, 2), flip where ``flips``.

    The same function as ``cnnzoo.data.augmentation.random_crop_flip`` of the same offsets and flips.
    """
    b, h, w, _ = images.shape
    x = images.float() / 255.0
    padded = F.pad(x, (0, 0, PAD, PAD, PAD, PAD))
    rows = offsets[:, :1] + torch.arange(h, device=images.device)
    cols = offsets[:, 1:] + torch.arange(w, device=images.device)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=images.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]]


def to_model_input(x, mean, std, channels_last: bool):
    """Normalised NHWC floats -> the NCHW tensor the twin takes, in the variant's memory format."""
    x = ((x - mean) / std).permute(0, 3, 1, 2)  # already channels_last in memory
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
