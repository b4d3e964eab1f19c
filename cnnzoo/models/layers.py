"""Pieces the model families share: the activation table, a torch-padded convolution, PyTorch's
pooling semantics and PyTorch's default initialisation."""

from __future__ import annotations

import functools
import math
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


@jax.custom_jvp
def relu(x):
    """``jax.nn.relu``, value for value (NaN stays NaN, -0 becomes +0) and with the same derivative
    (0 at 0), written as a select rather than ``max(x, 0)``.

    Why: XLA's CPU fusion treats ``max(x, 0)`` as a free unary op and recomputes it, with the whole
    chain of BatchNorm affines, residual additions and earlier ReLUs behind it, inside every
    consumer. One consumer is the transpose that feeds each convolution's weight gradient; there,
    re-reading up to four 8 MB tensors in transposed order took a third of the CPU time of a
    ResNet-20 training step. A select with a full-size predicate is not "unary", so XLA
    materialises the activation once and every consumer reads it; the step runs ~1.2x faster
    (results/cpu/compare_pytorch_NOTES.md).
    """
    return jnp.where(x > 0, x, jnp.where(jnp.isnan(x), x, jnp.zeros_like(x)))


relu.defjvps(lambda g, ans, x: jnp.where(x > 0, g, jnp.zeros_like(g)))

# The one table from name to function; every `activation` field is resolved here.
ACTIVATIONS = {
    'relu': relu,
    'leaky_relu': functools.partial(nn.leaky_relu, negative_slope=0.01),  # torch's default slope
    'sigmoid': nn.sigmoid,
    'tanh': jnp.tanh,
    'gelu': functools.partial(nn.gelu, approximate=False),  # the exact erf form, torch's default
    'silu': nn.silu,
    'elu': nn.elu,
}
# The type of every ``activation`` field: one of the table's names.
Activation = Literal[tuple(ACTIVATIONS)]


def get_activation(name: str):
    """The function called ``name`` in ``ACTIVATIONS``; an unknown name is a one-line ValueError."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f'unknown activation {name!r}; known activations: {", ".join(ACTIVATIONS)}') from None


_NHWC = ('NHWC', 'HWIO', 'NHWC')


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
    """``lax.conv_general_dilated``, with forms that XLA's CPU backend runs far too slowly computed
    another way. Pass it as ``nn.Conv(..., conv_general_dilated=conv_general_dilated)``.

    - A kernel larger than the input in every spatial dimension (a 3x3 convolution on a 2x2 or 1x1
      map, as in the last stage of VGG's CIFAR head, or an ImageNet ResNet on 32x32 images): XLA
      swaps the convolution's operands into a form that no fast CPU kernel takes; it ran ~100x
      slower than the same convolution as a matrix product (1.7 s against 12 ms for 128x2x2x512 ->
      512), and made VGG-16 train 3x slower than PyTorch on CPU. Here it is that matrix product:
      the image patches (im2col, tiny for such maps) times the kernel, on every backend.
    - A depthwise convolution (one group per channel, one output per group: MobileNetV2's 3x3 in
      the inverted bottleneck): XLA's CPU grouped convolution and its gradients took 7.5 s for the
      forward and backward pass of a 128x32x32x96 map, against 0.5 s for the same sum of products
      written as nine shifted, scaled copies of the input (``_depthwise_by_shifts``; results/cpu/
      depthwise.log). ``lax.platform_dependent`` takes that form only where the program is
      compiled for the CPU; GPUs keep XLA's convolution (cuDNN has depthwise kernels).
    - A 1x1 convolution without padding (a bottleneck's reduce and expand layers, projection
      shortcuts, the inverted bottleneck's expansion and projection): XLA's CPU convolution and its
      gradients took 3-8x as long as the same layer as a matrix product over the (strided) pixels
      (583 against 186 ms for 128x32x32x16 -> 96 forward and backward; results/cpu/depthwise.log).
      Also taken only on the CPU.

    - Any other convolution with one group (the 3x3 layers of every ResNet, VGG's, GoogLeNet's):
      forward and input gradient are XLA's, but on the CPU the weight gradient is a sum over chunks
      of the batch of patches x output gradient (``_weight_grad_by_chunks``; in a process that is
      the run's only one: a run of several processes keeps XLA's), 1.5-11x faster per
      ResNet layer than XLA's on an AVX2 CPU (results/cpu/profile/conv_shapes_2threads.md); on an
      AVX-512 one 1.7-1.9x faster on resnet18's wide layers and 0.75-1.4x XLA's time on resnet20's
      (conv_shapes_2threads_avx512.md, BENCHMARKS.md).

    All are the same function, up to the order in which floats are added. Anything else (dilation,
    several channels per group, another layout) goes to ``lax.conv_general_dilated`` unchanged.
    """
    def xla(lhs, rhs):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        dimension_numbers, feature_group_count, batch_group_count,
                                        precision=precision, preferred_element_type=preferred_element_type)

    spatial = lhs.ndim - 2
    kernel_size, image_size = rhs.shape[:spatial], lhs.shape[1:1 + spatial]
    nhwc = (batch_group_count == 1 and spatial == 2
            and all(d == 1 for d in (lhs_dilation or ()) + (rhs_dilation or ()))
            and dimension_numbers == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC))
    if not nhwc:
        return xla(lhs, rhs)
    pads = lax.padtype_to_pads(image_size, kernel_size, window_strides, padding) if isinstance(padding, str) \
        else [tuple(p) for p in padding]
    if feature_group_count == 1 and all(k > n for k, n in zip(kernel_size, image_size)):
        windows = _windows(jnp.pad(lhs, ((0, 0), *pads, (0, 0))), kernel_size, window_strides)
        patches = jnp.concatenate(windows, axis=-1)
        kernel = rhs.reshape(-1, rhs.shape[3])  # HWIO rows in the patches' order
        return lax.dot_general(patches, kernel, (((3,), (0,)), ((), ())), precision=precision,
                               preferred_element_type=preferred_element_type)
    if feature_group_count == 1 and tuple(kernel_size) == (1, 1) and all(p == (0, 0) for p in pads):
        def pointwise(lhs, rhs):
            sh, sw = window_strides
            return lax.dot_general(lhs[:, ::sh, ::sw, :], rhs[0, 0], (((3,), (0,)), ((), ())), precision=precision,
                                   preferred_element_type=preferred_element_type)
        return lax.platform_dependent(lhs, rhs, cpu=pointwise, default=xla)
    if feature_group_count > 1 and rhs.shape[2] == 1 and feature_group_count == lhs.shape[3] == rhs.shape[3]:
        def by_shifts(lhs, rhs):
            return _depthwise_by_shifts(lhs, rhs, window_strides, pads, preferred_element_type)
        return lax.platform_dependent(lhs, rhs, cpu=by_shifts, default=xla)
    # One process only: in a run of several processes (gloo between them) the chunked form's scan
    # over a batch sharded across processes hung the runs of tests/test_stops.py and
    # tests/test_lost_process.py; those runs keep XLA's weight gradient.
    if feature_group_count == 1 and preferred_element_type is None and jax.process_count() == 1:
        def chunked(lhs, rhs):
            return _conv_chunked_weight_grad(lhs, rhs, tuple(window_strides), tuple(map(tuple, pads)), precision)
        return lax.platform_dependent(lhs, rhs, cpu=chunked, default=xla)
    return xla(lhs, rhs)


# How many bytes of image patches one step of the chunked weight gradient gathers: the patch
# matrix and the output gradient it meets stay in the core's L2/L3 cache (results/cpu/profile/).
WEIGHT_GRAD_CHUNK_BYTES = 2 ** 21


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_chunked_weight_grad(lhs: jax.Array, rhs: jax.Array, strides: tuple[int, int],
                              pads: tuple[tuple[int, int], ...], precision) -> jax.Array:
    """An NHWC x HWIO convolution: XLA's, with XLA's input gradient, and a weight gradient of its
    own (:func:`_weight_grad_by_chunks`)."""
    return lax.conv_general_dilated(lhs, rhs, strides, pads, dimension_numbers=_NHWC, precision=precision)


def _conv_chunked_fwd(lhs, rhs, strides, pads, precision):
    return _conv_chunked_weight_grad(lhs, rhs, strides, pads, precision), (lhs, rhs)


def _conv_chunked_bwd(strides, pads, precision, residuals, grad):
    lhs, rhs = residuals
    _, input_vjp = jax.vjp(lambda x: lax.conv_general_dilated(x, rhs, strides, pads, dimension_numbers=_NHWC,
                                                              precision=precision), lhs)
    (grad_lhs,) = input_vjp(grad)
    return grad_lhs, _weight_grad_by_chunks(lhs, grad, rhs.shape, strides, pads, precision).astype(rhs.dtype)


_conv_chunked_weight_grad.defvjp(_conv_chunked_fwd, _conv_chunked_bwd)


def _weight_grad_by_chunks(lhs: jax.Array, grad: jax.Array, kernel_shape: tuple[int, ...],
                           strides: tuple[int, int], pads: tuple[tuple[int, int], ...], precision) -> jax.Array:
    """The gradient of an NHWC x HWIO convolution with respect to its kernel, in float32: for each
    chunk of the batch, the chunk's image patches (im2col, ``kh*kw*cin`` columns) transposed times
    the chunk's output gradient, summed over the chunks.

    Why: XLA's CPU weight gradient is a convolution over the transposed activations (batch as the
    contracted feature) that its fast kernels run poorly: 2-4x slower than this per ResNet layer
    (benchmarks/conv_shapes.py). One matrix product over the whole batch's patches is slower still,
    because the patch matrix (9x the activation) leaves the cache; a chunk's patches stay in it.
    The same sum of products as XLA's, up to the order in which floats are added.
    """
    kh, kw, cin, cout = kernel_shape
    n, oh, ow = grad.shape[:3]
    per_image = oh * ow * kh * kw * cin * lhs.dtype.itemsize
    fits = max(1, WEIGHT_GRAD_CHUNK_BYTES // per_image)
    chunk = max(d for d in range(1, min(n, fits) + 1) if n % d == 0)

    def chunk_product(acc, operands):
        images, grads = operands
        windows = _windows(jnp.pad(images, ((0, 0), *pads, (0, 0))), (kh, kw), strides)
        patches = jnp.concatenate(windows, axis=-1).reshape(-1, kh * kw * cin)
        return acc + lax.dot_general(patches, grads.reshape(-1, cout), (((0,), (0,)), ((), ())),
                                     precision=precision, preferred_element_type=jnp.float32), None

    chunks = (lhs.reshape(n // chunk, chunk, *lhs.shape[1:]), grad.reshape(n // chunk, chunk, *grad.shape[1:]))
    total, _ = lax.scan(chunk_product, jnp.zeros((kh * kw * cin, cout), jnp.float32), chunks)
    return total.reshape(kernel_shape)


def _windows(x, kernel_size, strides):
    """The kh*kw strided views of the padded NHWC image ``x`` that a convolution's taps read, in
    the kernel's row-major (HW) order."""
    (kh, kw), (sh, sw) = kernel_size, strides
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    return [x[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :] for i in range(kh) for j in range(kw)]


def _depthwise_by_shifts(lhs, rhs, strides, pads, preferred_element_type=None):
    """A depthwise convolution (HW1C kernel) as the sum over its taps of the shifted input times
    that tap's per-channel weight. Sums in float32 at least, as XLA's convolutions accumulate."""
    acc = jnp.promote_types(lhs.dtype, jnp.float32)
    windows = _windows(jnp.pad(lhs, ((0, 0), *pads, (0, 0))), rhs.shape[:2], strides)
    taps = rhs.reshape(-1, rhs.shape[3]).astype(acc)
    out = sum(w.astype(acc) * t for w, t in zip(windows, taps))
    return out.astype(preferred_element_type or lhs.dtype)


# torchvision initialises convolutions with kaiming_normal_(mode='fan_out', nonlinearity='relu').
conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def conv(features: int, kernel: int, stride: int = 1, *, name: str, dtype=jnp.float32,
         kernel_init=conv_init) -> nn.Conv:
    """A bias-free square convolution padded by ``kernel // 2`` on every side, as in PyTorch.

    The padding is explicit because 'SAME' pads (0, 1) for a stride of 2 on even sizes where
    PyTorch pads (1, 1); that would shift every strided layer by a pixel against torchvision.
    """
    pad = kernel // 2
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                   padding=((pad, pad), (pad, pad)), use_bias=False, kernel_init=kernel_init,
                   dtype=dtype, param_dtype=jnp.float32, name=name,
                   conv_general_dilated=conv_general_dilated)


# PyTorch's default for nn.Conv2d and nn.Linear (kaiming_uniform_ with a=sqrt(5)): weights
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)), i.e. variance 1/(3 fan_in); fan_in counts one group's inputs.
torch_default_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')


def torch_default_bias_init(fan_in: int):
    """PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in as for the kernel."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def adaptive_avg_pool(x, output_size: int):
    """PyTorch's ``AdaptiveAvgPool2d``: bin i spans [floor(i*H/out), ceil((i+1)*H/out))."""
    h, w = x.shape[1:3]

    def bins(n):
        return [((i * n) // output_size, -(-((i + 1) * n) // output_size)) for i in range(output_size)]

    rows = [jnp.mean(x[:, a:b], axis=1) for a, b in bins(h)]
    grid = [[jnp.mean(r[:, a:b], axis=1) for a, b in bins(w)] for r in rows]
    return jnp.stack([jnp.stack(row, axis=1) for row in grid], axis=1)


def pooled_size(size: int, window: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> int:
    """Output length of PyTorch's ``MaxPool2d`` along one axis (dilation 1)."""
    span = size + 2 * padding - window
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    # PyTorch drops a last window that would start in the right padding.
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def torch_max_pool(x, window: int, stride: int, *, padding: int = 0, ceil_mode: bool = False):
    """PyTorch's ``MaxPool2d(window, stride, padding, ceil_mode)`` on NHWC input.

    flax's ``max_pool`` has no ceil mode; here the extra windows that ceil mode adds are made by
    padding the bottom/right edges with -inf (never the maximum), so the output equals PyTorch's.
    """
    pads = []
    for size in x.shape[1:3]:
        out = pooled_size(size, window, stride, padding, ceil_mode)
        pads.append((padding, max(padding, (out - 1) * stride + window - size - padding)))
    return nn.max_pool(x, (window, window), strides=(stride, stride), padding=pads)
