"""cpu adapters: conv2d, pooling and upsampling (csrc/conv_gemm.cpp, csrc/conv.cpp).

conv2d forward and backward are implicit GEMMs in C++ (im2col straight into packed panels, one
OpenMP team); the kernels take the top/left pads and the output size, which together fix the
bottom/right pads, so 'same' padding with an even kernel needs nothing special. db is a numpy sum.
"""
import numpy as np

from .. import add_kernel
from ..reference.pool import interp_taps
from . import _C, NATIVE_DTYPES, with_fallback


def _ok(*arrays) -> bool:
    dt = arrays[0].dtype
    return dt in NATIVE_DTYPES and all(a is None or a.dtype == dt for a in arrays)


def _conv_args(x, w, stride, pads, dilation):
    kh, kw = w.shape[2], w.shape[3]
    oh = (x.shape[2] + pads[0] + pads[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (x.shape[3] + pads[2] + pads[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return (stride[0], stride[1], pads[0], pads[2], dilation[0], dilation[1]), oh, ow


def _conv2d_forward(x, w, b, stride, pads, dilation, groups):
    if not _ok(x, w, b) or x.ndim != 4:
        return None
    geo, oh, ow = _conv_args(x, w, stride, pads, dilation)
    return _C.conv2d_forward(np.ascontiguousarray(x), np.ascontiguousarray(w),
                             None if b is None else np.ascontiguousarray(b), *geo, groups, oh, ow)


def _conv2d_backward(x, w, dy, stride, pads, dilation, groups, needs=(True, True, True)):
    if not _ok(x, w, dy) or x.ndim != 4:
        return None
    geo, _, _ = _conv_args(x, w, stride, pads, dilation)
    dy = np.ascontiguousarray(dy)
    dx = dw = None
    if needs[0] or needs[1]:
        dx, dw = _C.conv2d_backward(np.ascontiguousarray(x), np.ascontiguousarray(w), dy, *geo, groups,
                                    bool(needs[0]), bool(needs[1]))
    db = dy.sum(axis=(0, 2, 3)) if needs[2] else None
    return dx, dw, db


def _max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    if not _ok(x) or x.ndim != 4:
        return None
    from ..reference.pool import pool_out_size

    oh = pool_out_size(x.shape[2], kernel_size[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_out_size(x.shape[3], kernel_size[1], stride[1], padding[1], dilation[1], ceil_mode)
    return _C.max_pool2d_forward(np.ascontiguousarray(x), *kernel_size, *stride, *padding, *dilation, oh, ow)


def _max_pool2d_backward(dy, indices, input_shape):
    if not _ok(dy) or dy.ndim != 4:
        return None
    return _C.max_pool2d_backward(np.ascontiguousarray(dy), np.ascontiguousarray(indices, dtype=np.int64),
                                  input_shape[2], input_shape[3])


def _avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    if not _ok(x) or x.ndim != 4:
        return None
    from ..reference.pool import pool_out_size

    oh = pool_out_size(x.shape[2], kernel_size[0], stride[0], padding[0], 1, ceil_mode)
    ow = pool_out_size(x.shape[3], kernel_size[1], stride[1], padding[1], 1, ceil_mode)
    return _C.avg_pool2d_forward(np.ascontiguousarray(x), *kernel_size, *stride, *padding, oh, ow,
                                 bool(count_include_pad), int(divisor_override or 0))


def _avg_pool2d_backward(dy, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                         divisor_override):
    if not _ok(dy) or dy.ndim != 4:
        return None
    return _C.avg_pool2d_backward(np.ascontiguousarray(dy), input_shape[2], input_shape[3], *kernel_size, *stride,
                                  *padding, bool(count_include_pad), int(divisor_override or 0))


def _taps(in_hw, out_hw, mode, align_corners, scales, dtype):
    th = interp_taps(in_hw[0], out_hw[0], mode, align_corners, scales[0], dtype.type)
    tw = interp_taps(in_hw[1], out_hw[1], mode, align_corners, scales[1], dtype.type)
    return [th[0], th[1], tw[0], tw[1], th[2], tw[2]]


def _upsample2d_forward(x, output_size, mode, align_corners, scales):
    if not _ok(x) or x.ndim != 4:
        return None
    taps = _taps(x.shape[2:], output_size, mode, align_corners, scales, x.dtype)
    return _C.upsample2d_forward(np.ascontiguousarray(x), output_size[0], output_size[1], *taps)


def _upsample2d_backward(dy, input_shape, mode, align_corners, scales):
    if not _ok(dy) or dy.ndim != 4:
        return None
    taps = _taps(input_shape[2:], dy.shape[2:], mode, align_corners, scales, dy.dtype)
    return _C.upsample2d_backward(np.ascontiguousarray(dy), input_shape[2], input_shape[3], *taps)


for _name, _fn in (("conv2d_forward", _conv2d_forward), ("conv2d_backward", _conv2d_backward),
                   ("max_pool2d_forward", _max_pool2d_forward), ("max_pool2d_backward", _max_pool2d_backward),
                   ("avg_pool2d_forward", _avg_pool2d_forward), ("avg_pool2d_backward", _avg_pool2d_backward),
                   ("upsample2d_forward", _upsample2d_forward), ("upsample2d_backward", _upsample2d_backward)):
    add_kernel(_name, "cpu", with_fallback(_name, _fn))
