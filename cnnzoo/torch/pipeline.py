"""The PyTorch twin's evaluation input: the streaming presets' evaluation form, on the PyTorch side.

With torchvision installed this is torchvision's own ``transforms.Compose([Resize(r), CenterCrop(s),
ToTensor(), Normalize(mean, std)])`` (``imagenet``; ``r = round(s / 0.875)``) or ``Resize((s, s))``
for the other presets, the pipeline torchvision's checkpoints are evaluated with. Without it (the
development machines cannot install torchvision without a CUDA build of torch), the same steps are
written here on PIL and torch, following torchvision's definitions: PIL's bilinear resize (what
torchvision calls for PIL images), the crop offset ``int(round((h - s) / 2))``, ``x / 255`` and
``(x - mean) / std`` in float32 tensors. cnnzoo's own pipeline (``cnnzoo.data.images``) is the
other side of the comparison; both decode with PIL, so they see the same pixels, and the logits
differ by the two frameworks' arithmetic alone.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cnnzoo.data.images import EVAL_CROP_FRACTION, IMAGENET_MEAN, IMAGENET_STD


def torchvision_available() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - absent, or a build that does not match torch
        return False
    return True


def eval_transform(preset: str, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """``PIL image -> float32 tensor (3, size, size)``: the preset's evaluation form (see the module
    docstring); ``.name`` says which implementation it is."""
    resize_to = int(round(size / EVAL_CROP_FRACTION))
    if torchvision_available():
        from torchvision import transforms

        steps = ([transforms.Resize(resize_to), transforms.CenterCrop(size)] if preset == 'imagenet'
                 else [transforms.Resize((size, size))])
        transform = transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(mean, std)])
        return _Named(transform, 'torchvision.transforms')
    return _Named(_PilTorchTransform(preset, size, resize_to, mean, std), 'PIL + torch (torchvision absent)')


class _Named:
    def __init__(self, fn, name):
        self.fn, self.name = fn, name

    def __call__(self, image):
        return self.fn(image)


class _PilTorchTransform:
    def __init__(self, preset, size, resize_to, mean, std):
        self.preset, self.size, self.resize_to = preset, size, resize_to
        self.mean, self.std = mean, std

    def __call__(self, image: Image.Image):
        import torch

        s = self.size
        if self.preset == 'imagenet':
            w, h = image.size
            short, long = min(w, h), max(w, h)
            if short != self.resize_to:
                scaled = int(self.resize_to * long / short)
                image = image.resize((self.resize_to, scaled) if w <= h else (scaled, self.resize_to), Image.Resampling.BILINEAR)
            x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
            _, h, w = x.shape
            if h < s or w < s:  # torchvision pads a too-small image with zeros, centred
                ph, pw = max(s - h, 0), max(s - w, 0)
                x = torch.nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
                _, h, w = x.shape
            top, left = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))
            x = x[:, top:top + s, left:left + s]
        else:
            if image.size != (s, s):
                image = image.resize((s, s), Image.Resampling.BILINEAR)
            x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
        x = x.float() / 255.0
        mean = torch.tensor(self.mean, dtype=torch.float32)[:, None, None]
        std = torch.tensor(self.std, dtype=torch.float32)[:, None, None]
        return (x - mean) / std


def open_image(data) -> Image.Image:
    """The twin's own decode: PIL, converted to RGB, from encoded bytes or a uint8 array."""
    if isinstance(data, np.ndarray):
        array = data[..., 0] if data.ndim == 3 and data.shape[-1] == 1 else data
        image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    else:
        image = Image.open(io.BytesIO(data))
    return image.convert('RGB')


def twin_logits(twin, source, transform, *, batch_size: int = 64) -> np.ndarray:
    """The twin's logits (N, classes) over every example of ``source``, in order."""
    import torch

    twin.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(source), batch_size):
            batch = torch.stack([transform(open_image(source[i]['image']))
                                 for i in range(start, min(start + batch_size, len(source)))])
            out.append(twin(batch).float().numpy())
    return np.concatenate(out)
