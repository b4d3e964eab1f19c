"""channel_stats (histograms) against the integer-sum formula it replaced, on CIFAR-sized uint8 images."""
import time
import numpy as np
from cnnzoo.data.datasets import channel_stats
x = np.random.default_rng(0).integers(0, 256, (50000, 32, 32, 3), dtype=np.uint8)
t = time.perf_counter(); new = channel_stats(x); print('histograms', round(time.perf_counter() - t, 2), 's')
pixels = x.reshape(-1, 3); n = len(pixels)
t = time.perf_counter()
total = pixels.sum(axis=0, dtype=np.uint64).astype(np.float64)
squares = np.einsum('ij,ij->j', pixels.astype(np.uint32), pixels.astype(np.uint32), dtype=np.uint64).astype(np.float64)
mean = total / n; std = np.sqrt(np.maximum(squares / n - mean ** 2, 0.0))
old = (tuple(float(v) / 255 for v in mean), tuple(float(v) / 255 for v in std))
print('integer sums', round(time.perf_counter() - t, 2), 's; equal:', new == old)
