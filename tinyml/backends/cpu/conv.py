"""cpu adapters: conv2d (csrc/conv.cpp); pooling and upsampling are in pool.py (csrc/pool.cpp).

conv2d forward and backward are implicit GEMMs in C++ (operands read in place from im2col rows, dy
rows or zero-padded input slabs; one OpenMP team; the weight gradient bit-identical for any thread
count); a 3x3 stride-1 convolution with groups=1, top/left pads in 0..2 and at least 16 input
and output channels runs its forward and input gradient as Winograd F(2x2, 3x3) instead
(csrc/conv_winograd.h: 2.25x fewer multiplies, the same rounding as direct summation). The kernels
take the top/left pads and the output size, which together fix the bottom/right pads, so 'same'
padding with an even kernel needs nothing special. db is a numpy sum.
A dtype other than float32/float64, mixed dtypes or a non-4-d input return NotImplemented: the
numpy reference runs.
"""

from . import _C, contiguous, native

__all__ = ["conv2d_backward", "conv2d_forward"]


def _conv_args(x, w, stride, pads, dilation):
    kh, kw = w.shape[2], w.shape[3]
    oh = (x.shape[2] + pads[0] + pads[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (x.shape[3] + pads[2] + pads[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return (stride[0], stride[1], pads[0], pads[2], dilation[0], dilation[1]), oh, ow


def conv2d_forward(x, w, b, stride, pads, dilation, groups):
    if not native(x, w, b) or x.ndim != 4:
        return NotImplemented
    geo, oh, ow = _conv_args(x, w, stride, pads, dilation)
    return _C.conv2d_forward(contiguous(x), contiguous(w), contiguous(b), *geo, groups, oh, ow)


def conv2d_backward(x, w, dy, stride, pads, dilation, groups, needs=(True, True, True)):
    if not native(x, w, dy) or x.ndim != 4:
        return NotImplemented
    geo, _, _ = _conv_args(x, w, stride, pads, dilation)
    dy = contiguous(dy)
    dx = dw = None
    if needs[0] or needs[1]:
        dx, dw = _C.conv2d_backward(contiguous(x), contiguous(w), dy, *geo, groups, bool(needs[0]),
                                    bool(needs[1]))
    db = dy.sum(axis=(0, 2, 3)) if needs[2] else None
    return dx, dw, db
