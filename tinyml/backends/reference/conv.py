"""Reference kernels for 2-d convolution (numpy, im2col + matmul): the oracle for csrc/conv.cpp.

Shapes: x (N, C, H, W), w (O, C/groups, kh, kw), b (O,) or None, y (N, O, oh, ow).
`pads` is (top, bottom, left, right) so that 'same' padding with an even kernel can put the
extra row/column at the end, as PyTorch does; a negative bottom/right pad crops the input there
(conv_transpose's backward with output_padding >= stride needs it). conv1d runs here as conv2d
with H = 1. conv_transpose1d/2d run on these kernels too (ops/conv.py): their forward is this
dx with dy := their input (x is then read for its shape only), their backward conv2d_forward.

    cols[n, g, (c, p, q), (i, j)] = xpad[n, g*C/G + c, i*sh + p*dh, j*sw + q*dw]
    y[n, g] = w[g] @ cols[n, g] + b                        (w[g]: (O/G, C/G*kh*kw))
    dw[g]   = sum_n dy[n, g] @ cols[n, g]^T                db = sum over n, i, j of dy
    dx      = col2im(w[g]^T @ dy[n, g])                    (the adjoint of im2col: scatter-add)
"""
from __future__ import annotations

import numpy as np

__all__ = ["conv2d_backward", "conv2d_forward"]


def conv_out_size(size: int, pad_lo: int, pad_hi: int, k: int, stride: int, dilation: int) -> int:
    return (size + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1


def _geometry(x, w, stride, pads, dilation):
    _, _, h, wd = x.shape
    kh, kw = w.shape[2], w.shape[3]
    oh = conv_out_size(h, pads[0], pads[1], kh, stride[0], dilation[0])
    ow = conv_out_size(wd, pads[2], pads[3], kw, stride[1], dilation[1])
    return kh, kw, oh, ow


def _im2col(x, kh, kw, oh, ow, stride, pads, dilation, groups):
    """(N, G, C/G * kh * kw, oh * ow) copy of the receptive fields (a strided view, then reshape)."""
    n, c, _h, _wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], max(pads[1], 0)), (pads[2], max(pads[3], 0))))
    xp = xp[:, :, :xp.shape[2] + min(pads[1], 0), :xp.shape[3] + min(pads[3], 0)]  # negative pads crop
    s = xp.strides
    win = np.lib.stride_tricks.as_strided(
        xp, (n, c, kh, kw, oh, ow), (s[0], s[1], s[2] * dilation[0], s[3] * dilation[1], s[2] * stride[0],
                                     s[3] * stride[1]), writeable=False)
    return win.reshape(n, groups, (c // groups) * kh * kw, oh * ow)


def conv2d_forward(x, w, b, stride, pads, dilation, groups):
    """y = conv(x, w) + b with the given stride, (top, bottom, left, right) pads, dilation, groups."""
    n = x.shape[0]
    o = w.shape[0]
    kh, kw, oh, ow = _geometry(x, w, stride, pads, dilation)
    cols = _im2col(x, kh, kw, oh, ow, stride, pads, dilation, groups)
    wg = w.reshape(groups, o // groups, w.shape[1] * kh * kw)  # (no -1: any size may be 0)
    y = np.matmul(wg, cols).reshape(n, o, oh, ow)
    if b is not None:
        y = y + b.reshape(1, o, 1, 1)
    return y.astype(x.dtype, copy=False)


def conv2d_backward(x, w, dy, stride, pads, dilation, groups, needs=(True, True, True)):
    """(dx, dw, db) of y = conv2d(x, w, b); an entry is None where `needs` says it is not wanted."""
    n, c, h, wd = x.shape
    o = w.shape[0]
    kh, kw, oh, ow = _geometry(x, w, stride, pads, dilation)
    dyg = dy.reshape(n, groups, o // groups, oh * ow)
    dx = dw = db = None
    if needs[1]:
        cols = _im2col(x, kh, kw, oh, ow, stride, pads, dilation, groups)
        dw = np.matmul(dyg, cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w.shape)
        dw = dw.astype(w.dtype, copy=False)
    if needs[2]:
        db = dy.sum(axis=(0, 2, 3)).astype(dy.dtype, copy=False)
    if needs[0]:
        wg = w.reshape(groups, o // groups, w.shape[1] * kh * kw)
        dcols = np.matmul(wg.transpose(0, 2, 1), dyg).reshape(n, c, kh, kw, oh, ow)
        hp, wp = h + pads[0] + max(pads[1], 0), wd + pads[2] + max(pads[3], 0)
        dxp = np.zeros((n, c, hp, wp), dtype=np.result_type(dcols.dtype, x.dtype))
        sh, sw = stride
        for p in range(kh):
            for q in range(kw):
                r0, c0 = p * dilation[0], q * dilation[1]
                dxp[:, :, r0:r0 + sh * (oh - 1) + 1:sh, c0:c0 + sw * (ow - 1) + 1:sw] += dcols[:, :, p, q]
        dx = dxp[:, :, pads[0]:pads[0] + h, pads[2]:pads[2] + wd].astype(x.dtype)
    return dx, dw, db
