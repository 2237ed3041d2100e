"""cpu adapters: 2-d max/avg pooling and nearest/bilinear upsampling (csrc/pool.cpp).

The output sizes and interpolation taps are computed here with the reference's own helpers, so the
C++ kernels see exactly the geometry the numpy reference uses. The taps depend only on the sizes, the
mode, the scales and the dtype, so they are computed once per geometry and kept (read-only arrays, an
LRU cache of 64 entries): a bilinear 2x of 8x64x56x56 spent 0.13 ms of numpy per call on them, twice
per forward+backward. A dtype other than float32/float64,
mixed dtypes or a non-4-d input return NotImplemented: the numpy reference runs.
"""
import functools

import numpy as np

from ..reference.pool import interp_taps, pool_out_size
from . import _C, contiguous, native

__all__ = ["avg_pool2d_backward", "avg_pool2d_forward", "max_pool2d_backward", "max_pool2d_forward",
           "upsample2d_backward", "upsample2d_forward"]


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    if not native(x) or x.ndim != 4:
        return NotImplemented
    oh = pool_out_size(x.shape[2], kernel_size[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_out_size(x.shape[3], kernel_size[1], stride[1], padding[1], dilation[1], ceil_mode)
    return _C.max_pool2d_forward(contiguous(x), *kernel_size, *stride, *padding, *dilation, oh, ow)


def max_pool2d_backward(dy, indices, input_shape):
    if not native(dy) or dy.ndim != 4:
        return NotImplemented
    return _C.max_pool2d_backward(contiguous(dy), np.ascontiguousarray(indices, dtype=np.int64),
                                  input_shape[2], input_shape[3])


def avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    if not native(x) or x.ndim != 4:
        return NotImplemented
    oh = pool_out_size(x.shape[2], kernel_size[0], stride[0], padding[0], 1, ceil_mode)
    ow = pool_out_size(x.shape[3], kernel_size[1], stride[1], padding[1], 1, ceil_mode)
    return _C.avg_pool2d_forward(contiguous(x), *kernel_size, *stride, *padding, oh, ow,
                                 bool(count_include_pad), int(divisor_override or 0))


def avg_pool2d_backward(dy, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override):
    if not native(dy) or dy.ndim != 4:
        return NotImplemented
    return _C.avg_pool2d_backward(contiguous(dy), input_shape[2], input_shape[3], *kernel_size, *stride,
                                  *padding, bool(count_include_pad), int(divisor_override or 0))


def _taps(in_hw, out_hw, mode, align_corners, scales, dtype):
    """[h0, h1, w0, w1, lh, lw] for csrc/pool.cpp's upsample2d (interp_taps along each axis)."""
    sizes = tuple(int(v) for v in in_hw), tuple(int(v) for v in out_hw)
    sc = tuple(None if s is None else float(s) for s in scales)
    return _taps_cached(*sizes, mode, bool(align_corners), sc, np.dtype(dtype))


@functools.lru_cache(maxsize=64)
def _taps_cached(in_hw, out_hw, mode, align_corners, scales, dtype):
    th = interp_taps(in_hw[0], out_hw[0], mode, align_corners, scales[0], dtype.type)
    tw = interp_taps(in_hw[1], out_hw[1], mode, align_corners, scales[1], dtype.type)
    taps = [np.ascontiguousarray(a) for a in (th[0], th[1], tw[0], tw[1], th[2], tw[2])]
    for a in taps:
        a.flags.writeable = False  # shared by every call with this geometry
    return taps


def upsample2d_forward(x, output_size, mode, align_corners, scales):
    if not native(x) or x.ndim != 4:
        return NotImplemented
    taps = _taps(x.shape[2:], output_size, mode, align_corners, scales, x.dtype)
    return _C.upsample2d_forward(contiguous(x), output_size[0], output_size[1], *taps,
                                 nearest=mode != "bilinear")


def upsample2d_backward(dy, input_shape, mode, align_corners, scales):
    if not native(dy) or dy.ndim != 4:
        return NotImplemented
    taps = _taps(input_shape[2:], dy.shape[2:], mode, align_corners, scales, dy.dtype)
    return _C.upsample2d_backward(contiguous(dy), input_shape[2], input_shape[3], *taps,
                                  nearest=mode != "bilinear")
