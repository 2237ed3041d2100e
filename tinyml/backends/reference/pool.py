"""Reference kernels for 2-d pooling and upsampling (numpy): the oracle for csrc/conv.cpp.

All take x (N, C, H, W) and work plane by plane (PyTorch's semantics, its index conventions):

    max_pool2d:   y = max over the window, idx = h * W + w of the max in the unpadded input
                  (the first one on ties; a NaN wins, the last NaN if several); dx[idx] += dy
    avg_pool2d:   y = sum over the window / divisor, divisor = the window clipped to the padded
                  input (count_include_pad) or to the input; dx = the adjoint (spread dy / divisor)
    adaptive_avg_pool2d: window i covers [floor(i H / oh), ceil((i + 1) H / oh))
    upsample2d:   y = Mh x Mw^T with Mh (oh, H), Mw (ow, W) the interpolation matrices of the mode
                  (nearest: one-hot rows; bilinear: two weights per row); dx = Mh^T dy Mw
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool2d_forward",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "upsample2d_backward",
    "upsample2d_forward",
]


def pool_out_size(size: int, k: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's pooling_output_shape: in ceil mode the last window must start inside input + left pad."""
    num = size + 2 * pad - dilation * (k - 1) - 1
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _windows(x, k, stride, pad, dilation, oh, ow, fill):
    """(N, C, oh, ow, kh, kw) strided view of x padded with `fill` far enough for every window."""
    n, c, h, w = x.shape
    need_h = (oh - 1) * stride[0] + dilation[0] * (k[0] - 1) + 1
    need_w = (ow - 1) * stride[1] + dilation[1] * (k[1] - 1) + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], max(0, need_h - h - pad[0])), (pad[1], max(0, need_w - w - pad[1]))),
                constant_values=fill)
    s = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, (n, c, oh, ow, k[0], k[1]),
        (s[0], s[1], s[2] * stride[0], s[3] * stride[1], s[2] * dilation[0], s[3] * dilation[1]), writeable=False)


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    """(y, indices): the window maxima and their flat h * W + w positions in x (int64)."""
    n, c, h, w = x.shape
    oh = pool_out_size(h, kernel_size[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_out_size(w, kernel_size[1], stride[1], padding[1], dilation[1], ceil_mode)
    win = _windows(x, kernel_size, stride, padding, dilation, oh, ow, -np.inf).reshape(n, c, oh, ow, -1)
    arg = np.argmax(win, axis=-1)  # the first maximum on ties
    isnan = np.isnan(win)
    if isnan.any():  # PyTorch's scan lets every NaN take over: the last NaN of a window wins
        last_nan = isnan.shape[-1] - 1 - np.argmax(isnan[..., ::-1], axis=-1)
        arg = np.where(isnan.any(axis=-1), last_nan, arg)
    y = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    p, q = np.divmod(arg, kernel_size[1])
    rows = np.arange(oh).reshape(oh, 1) * stride[0] - padding[0] + p * dilation[0]
    cols = np.arange(ow).reshape(1, ow) * stride[1] - padding[1] + q * dilation[1]
    return y.astype(x.dtype, copy=False), (rows * w + cols).astype(np.int64)


def max_pool2d_backward(dy, indices, input_shape):
    """dx[n, c].flat[indices] += dy (windows that overlap add up)."""
    n, c, h, w = input_shape
    planes = np.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * (h * w)
    flat = np.bincount((indices + planes).ravel(), weights=np.asarray(dy, dtype=np.float64).ravel(),
                       minlength=n * c * h * w)
    return flat.reshape(input_shape).astype(dy.dtype)


def _avg_divisor(h, w, oh, ow, k, stride, pad, count_include_pad, divisor_override):
    if divisor_override:
        return np.full((oh, ow), float(divisor_override))
    hs = np.arange(oh) * stride[0] - pad[0]
    ws = np.arange(ow) * stride[1] - pad[1]
    he, we = np.minimum(hs + k[0], h + pad[0]), np.minimum(ws + k[1], w + pad[1])
    if count_include_pad:
        return np.outer(he - hs, we - ws).astype(np.float64)
    hs, ws, he, we = np.maximum(hs, 0), np.maximum(ws, 0), np.minimum(he, h), np.minimum(we, w)
    return np.outer(he - hs, we - ws).astype(np.float64)


def avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    _n, _c, h, w = x.shape
    oh = pool_out_size(h, kernel_size[0], stride[0], padding[0], 1, ceil_mode)
    ow = pool_out_size(w, kernel_size[1], stride[1], padding[1], 1, ceil_mode)
    win = _windows(x, kernel_size, stride, padding, (1, 1), oh, ow, 0)
    div = _avg_divisor(h, w, oh, ow, kernel_size, stride, padding, count_include_pad, divisor_override)
    return (win.sum(axis=(-2, -1)) / div).astype(x.dtype)


def avg_pool2d_backward(dy, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override):
    n, c, h, w = input_shape
    oh, ow = dy.shape[2], dy.shape[3]
    div = _avg_divisor(h, w, oh, ow, kernel_size, stride, padding, count_include_pad, divisor_override)
    g = dy / div
    kh, kw = kernel_size
    hp = max((oh - 1) * stride[0] + kh, h + 2 * padding[0])
    wp = max((ow - 1) * stride[1] + kw, w + 2 * padding[1])
    dxp = np.zeros((n, c, hp, wp))
    for p in range(kh):
        for q in range(kw):
            dxp[:, :, p:p + stride[0] * (oh - 1) + 1:stride[0], q:q + stride[1] * (ow - 1) + 1:stride[1]] += g
    return dxp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w].astype(dy.dtype)


def _adaptive_matrix(size: int, out: int) -> np.ndarray:
    """(out, size) averaging matrix: row i is 1/len over [floor(i size/out), ceil((i+1) size/out))."""
    m = np.zeros((out, size))
    for i in range(out):
        s, e = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, s:e] = 1.0 / (e - s)
    return m


def adaptive_avg_pool2d_forward(x, output_size):
    mh, mw = _adaptive_matrix(x.shape[2], output_size[0]), _adaptive_matrix(x.shape[3], output_size[1])
    return np.einsum("ph,nchw,qw->ncpq", mh, x, mw).astype(x.dtype)


def adaptive_avg_pool2d_backward(dy, input_shape):
    mh, mw = _adaptive_matrix(input_shape[2], dy.shape[2]), _adaptive_matrix(input_shape[3], dy.shape[3])
    return np.einsum("ph,ncpq,qw->nchw", mh, dy, mw).astype(dy.dtype)


def interp_taps(size: int, out: int, mode: str, align_corners: bool, scale, dtype):
    """Two taps per output index, (i0, i1, weight of i1), with PyTorch's source-index rules,
    computed in `dtype` (float32 for float32 inputs, as ATen's opmath does). Nearest: i1 = i0."""
    dst = np.arange(out)
    if mode in ("nearest", "nearest-exact"):
        ratio = np.float32(1.0 / scale) if scale else np.float32(size / out)
        off = np.float32(0.5) if mode == "nearest-exact" else np.float32(0)
        src = np.minimum(np.floor((dst.astype(np.float32) + off) * ratio).astype(np.int64), size - 1)
        return src, src, np.zeros(out, dtype)
    if align_corners:
        ratio = (size - 1) / (out - 1) if out > 1 else 0.0
        src = np.asarray(ratio, dtype) * dst.astype(dtype)
    else:
        ratio = 1.0 / scale if scale else size / out
        src = np.maximum(np.asarray(ratio, dtype) * (dst.astype(dtype) + dtype(0.5)) - dtype(0.5), 0)
    i0 = src.astype(np.int64)
    return i0, i0 + (i0 < size - 1), (src - i0).astype(dtype)


def _interp_matrix(size: int, out: int, mode: str, align_corners: bool, scale, dtype) -> np.ndarray:
    """(out, size) interpolation matrix built from the taps."""
    i0, i1, lam = interp_taps(size, out, mode, align_corners, scale, dtype)
    m = np.zeros((out, size))
    dst = np.arange(out)
    np.add.at(m, (dst, i0), 1.0 - lam.astype(np.float64))
    np.add.at(m, (dst, i1), lam.astype(np.float64))
    return m


def upsample2d_forward(x, output_size, mode, align_corners, scales):
    """y = Mh x Mw^T; mode 'nearest', 'nearest-exact' or 'bilinear'; scales (sh, sw) or Nones."""
    dt = np.float64 if x.dtype == np.float64 else np.float32
    mh = _interp_matrix(x.shape[2], output_size[0], mode, align_corners, scales[0], dt)
    mw = _interp_matrix(x.shape[3], output_size[1], mode, align_corners, scales[1], dt)
    return np.einsum("ph,nchw,qw->ncpq", mh, x, mw).astype(x.dtype)


def upsample2d_backward(dy, input_shape, mode, align_corners, scales):
    dt = np.float64 if dy.dtype == np.float64 else np.float32
    mh = _interp_matrix(input_shape[2], dy.shape[2], mode, align_corners, scales[0], dt)
    mw = _interp_matrix(input_shape[3], dy.shape[3], mode, align_corners, scales[1], dt)
    return np.einsum("ph,ncpq,qw->nchw", mh, dy, mw).astype(dy.dtype)

