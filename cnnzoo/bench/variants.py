"""What every variant of the speed comparison shares (:mod:`cnnzoo.bench.speed` for JAX,
:mod:`cnnzoo.bench.torch_variants` for PyTorch): the fixed recipe, the result record, the interface the
runner times, and the per-step statistics."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np

from cnnzoo.models import cifar_fields

IMAGE_SHAPE = (32, 32, 3)

NUM_CLASSES = 10

# Per-channel statistics used to normalise; any fixed values do for speed, these are CIFAR-10's.
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

LEARNING_RATE = 0.01


def model_fields(model_name: str, image_size: int) -> tuple[int, dict]:
    """(classes, model fields) of the benchmarked network: the CIFAR adaptation on small images,
    the registry's ImageNet form with 1000 classes on large ones (ResNet-50 at 224x224)."""
    if image_size >= 64:
        return 1000, {}
    return NUM_CLASSES, cifar_fields(model_name)


@dataclasses.dataclass
class Result:
    """One model under one variant. Times in milliseconds unless named otherwise."""

    model: str
    variant: str
    precision: str = ''
    device: str = ''
    batch_size: int = 0
    train_ms: dict | None = None  # median, p10, p90, min, max of the timed steps
    train_images_per_sec: float | None = None
    train_images_per_sec_p10: float | None = None  # the slow end of the spread
    train_images_per_sec_p90: float | None = None
    first_step_s: float | None = None  # the first step, compilation included
    warmup_s: float | None = None  # all warm-up steps, the first included
    eval_ms: dict | None = None
    eval_images_per_sec: float | None = None
    memory_bytes: int | None = None
    memory_source: str = ''
    final_loss: float | None = None
    steps: int = 0
    image_size: int = 32
    # XLA's cost analysis of the model's JAX float32 train step (the same work for every variant of
    # the model), and the fraction of ``peak_flops`` it reaches at this variant's median step time.
    flops_per_step: float | None = None
    mfu: float | None = None
    note: str = ''  # e.g. why a bfloat16 figure is not the framework's own (emulated on this CPU)
    error: str = ''  # why the variant could not run (e.g. torch.compile without a C++ compiler)


class Variant:
    """What the runner needs of a variant; built (and warmed up) by a ``make_*`` function."""

    result: Result

    def train_step(self) -> None:
        """One training step, returned only when the device has finished it."""
        raise NotImplementedError

    def eval_step(self) -> None:
        """One evaluation batch, returned only when the device has finished it."""
        raise NotImplementedError

    def loss(self) -> float:
        """The loss of the last training step (a host sync)."""
        raise NotImplementedError


def step_stats(seconds: Sequence[float], batch_size: int) -> tuple[dict, float, float, float]:
    """(ms summary, images/s at the median, images/s at p10 and p90 of the per-step rates)."""
    ms = np.asarray(seconds, np.float64) * 1000.0
    summary = {'median': float(np.median(ms)), 'p10': float(np.percentile(ms, 10)),
               'p90': float(np.percentile(ms, 90)), 'min': float(ms.min()), 'max': float(ms.max())}
    # The rates' percentiles as those of the times (a rate falls as the time grows), so that p10 <=
    # median <= p90 holds with any number of steps (percentiles of the rates themselves interpolate
    # differently from the median time's rate when there are few steps).
    rate = lambda p: batch_size / (float(np.percentile(ms, p)) / 1000.0)  # noqa: E731
    return summary, rate(50), rate(90), rate(10)


def synthetic_data(num_images: int, seed: int = 0, image_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 square RGB images and integer labels (speed does not depend on content)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_images, image_size, image_size, 3), dtype=np.uint8)
    return images, rng.integers(0, NUM_CLASSES, num_images).astype(np.int32)


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` takes (``fn`` waits for its device work itself)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
