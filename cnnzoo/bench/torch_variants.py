"""The PyTorch half of :mod:`cnnzoo.bench.speed`: a model's twin trained as cnnzoo's train step trains.

The step does on the device, with tensor ops, what ``make_train_step`` with the ``'crop_flip'``
preset does inside jit: gather the batch from uint8 images held on the device, zero-pad 4 pixels,
crop 32x32 at a random offset (an index gather), flip half the images, scale to [0, 1], normalise,
run the model, cross-entropy (plus each auxiliary head's, weighted, as cnnzoo's loss), backward, and ``make_torch_optimizer``'s SGD step (the same optimizer
section, ``default_config().optimizer``, as the JAX side).

Variants (the device is CUDA when PyTorch sees one, else the CPU):

- ``torch-eager-fp32``: eager, float32, NCHW.
- ``torch-eager-bf16-cl``: eager under ``torch.autocast(dtype=bfloat16)``, model and input in
  ``channels_last``; parameters stay float32, the loss is taken in float32.
- ``torch-compile-fp32`` / ``torch-compile-bf16-cl``: the same, with augmentation, forward and loss
  under ``torch.compile`` (default mode; the backward is compiled with it through AOTAutograd). On
  CPU this needs a working C++ compiler; when compilation fails the row says why.
"""

from __future__ import annotations

import time

import torch

from cnnzoo.bench.variants import LEARNING_RATE, MEAN, STD, Result, Variant, model_fields, timed
from cnnzoo.config import default_config
from cnnzoo.torch.models import create_torch_model, twin_loss
from cnnzoo.torch.ops import PAD, crop_flip, device, synchronize, to_model_input
from cnnzoo.torch.optim import make_torch_optimizer

PRECISION = {
    'torch-eager-fp32': 'float32',
    'torch-eager-bf16-cl': 'autocast bfloat16, channels_last',
    'torch-compile-fp32': 'float32, torch.compile',
    'torch-compile-bf16-cl': 'autocast bfloat16, channels_last, torch.compile',
}


class TorchVariant(Variant):
    """A PyTorch variant (eager, AMP bfloat16 + channels_last, torch.compile) of a zoo model with
    the same data, augmentation and optimizer as the JAX step."""

    def __init__(self, model_name: str, variant: str, *, batch_size: int, images, labels, warmup: int,
                 seed: int = 0):
        dev = self.device = device()
        self.batch_size = batch_size
        self.result = Result(model_name, variant, precision=PRECISION[variant], batch_size=batch_size,
                             image_size=images.shape[1],
                             device=f'cuda: {torch.cuda.get_device_name()}' if dev.type == 'cuda' else 'cpu')
        if dev.type == 'cuda':
            torch.cuda.reset_peak_memory_stats()
            allocated_before = torch.cuda.memory_allocated()
        bf16 = 'bf16' in variant
        torch.manual_seed(seed)
        num_classes, fields = model_fields(model_name, images.shape[1])
        model = create_torch_model(model_name, num_classes=num_classes, **fields).to(dev)
        if bf16:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.train()
        self.opt = make_torch_optimizer(default_config().optimizer, model, LEARNING_RATE)
        self.images = torch.from_numpy(images).to(dev)
        self.labels = torch.from_numpy(labels).long().to(dev)
        self.generator = torch.Generator(device=dev).manual_seed(seed)
        self.perm = torch.randperm(len(images), device=dev, generator=self.generator)
        self.steps_per_epoch = len(images) // batch_size
        self.index = 0
        mean = torch.tensor(MEAN, device=dev)
        std = torch.tensor(STD, device=dev)

        def loss_fn(images, labels, offsets, flips):
            x = to_model_input(crop_flip(images, offsets, flips), mean, std, bf16)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                output = model(x)
            return twin_loss(model, output, labels)[0]

        def eval_fn(images):
            x = to_model_input(images.float() / 255.0, mean, std, bf16)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                return model(x).float()

        compile_ = variant.startswith('torch-compile')
        self.loss_fn = torch.compile(loss_fn) if compile_ else loss_fn
        self.eval_fn = torch.compile(eval_fn) if compile_ else eval_fn
        self.eval_images = self.images[:batch_size]
        self.last_loss = None

        t0 = time.perf_counter()
        self.train_step()
        first = time.perf_counter() - t0
        rest = sum(timed(self.train_step) for _ in range(max(0, warmup - 1)))
        for _ in range(max(1, warmup)):
            self.eval_step()
        self.result.first_step_s, self.result.warmup_s = first, first + rest
        if dev.type == 'cuda':
            self.result.memory_bytes = torch.cuda.max_memory_allocated() - allocated_before
            self.result.memory_source = 'torch.cuda.max_memory_allocated during warm-up'

    def train_step(self):
        b = self.batch_size
        idx = self.perm[self.index * b:(self.index + 1) * b]
        self.index = (self.index + 1) % self.steps_per_epoch
        offsets = torch.randint(0, 2 * PAD + 1, (b, 2), device=self.device, generator=self.generator)
        flips = torch.rand(b, device=self.device, generator=self.generator) < 0.5
        loss = self.loss_fn(self.images[idx], self.labels[idx], offsets, flips)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.last_loss = loss.detach()
        synchronize()

    def eval_step(self):
        self.model.eval()
        with torch.inference_mode():
            self.eval_fn(self.eval_images)
        synchronize()
        self.model.train()

    def loss(self):
        return float(self.last_loss)
