"""Reference kernels for 2-d pooling and upsampling (numpy): the oracle for csrc/pool.cpp.

All take x (N, C, H, W) and work plane by plane (PyTorch's semantics, its index conventions):

    max_pool2d:   y = max over the window's taps inside the input, idx = h * W + w of that max
                  (the first one on ties; a NaN wins, the last NaN if several); a window of padding
                  only (dilation can make one) gives -inf and idx -1; dx[idx] += dy
    avg_pool2d:   y = sum over the window / divisor, divisor = the window clipped to the padded
                  input (count_include_pad) or to the input; dx = the adjoint (spread dy / divisor)
    adaptive_avg_pool2d: window i covers [floor(i H / oh), ceil((i + 1) H / oh))
    upsample2d:   y = the taps of each output pixel, (i0, i1, l) per axis: nearest x[i0], bilinear
                  (1 - l) x[i0] + l x[i1] along W, then along H; dx = the adjoint (scatter-add)

NaN and inf reach exactly the outputs whose window or taps hold them, as in PyTorch: the kernels
gather and scatter, never multiply by a dense 0/1 matrix (0 * NaN would be NaN everywhere). A
bilinear tap of weight 0 still counts (0 * inf = NaN), as in PyTorch's formula.
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
    pads = ((0, 0), (0, 0), (pad[0], max(0, need_h - h - pad[0])), (pad[1], max(0, need_w - w - pad[1])))
    xp = np.pad(x, pads, constant_values=fill)
    s = xp.strides
    strides = (s[0], s[1], s[2] * stride[0], s[3] * stride[1], s[2] * dilation[0], s[3] * dilation[1])
    return np.lib.stride_tricks.as_strided(xp, (n, c, oh, ow, k[0], k[1]), strides, writeable=False)


def _tap_positions(size: int, out: int, k: int, stride: int, pad: int, dilation: int):
    """(out, k) input positions of each window's taps along one axis, and which lie inside the input."""
    pos = np.arange(out)[:, None] * stride - pad + np.arange(k)[None, :] * dilation
    return pos, (pos >= 0) & (pos < size)


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    """(y, indices): the window maxima and their flat h * W + w positions in x (int64)."""
    n, c, h, w = x.shape
    kh, kw = kernel_size
    oh = pool_out_size(h, kh, stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_out_size(w, kw, stride[1], padding[1], dilation[1], ceil_mode)
    win = _windows(x, kernel_size, stride, padding, dilation, oh, ow, -np.inf).reshape(n, c, oh, ow, kh * kw)
    rows, row_in = _tap_positions(h, oh, kh, stride[0], padding[0], dilation[0])
    cols, col_in = _tap_positions(w, ow, kw, stride[1], padding[1], dilation[1])
    inside = (row_in[:, None, :, None] & col_in[None, :, None, :]).reshape(oh, ow, kh * kw)
    # PyTorch's scan over the taps inside the input: the first maximum (-inf included), and a NaN
    # always takes over, so the last NaN of a window wins
    with np.errstate(invalid="ignore"):
        best = np.max(win, axis=-1, keepdims=True)
        arg = np.argmax(inside & (win == best), axis=-1)
    isnan = np.isnan(win)
    if isnan.any():
        last_nan = isnan.shape[-1] - 1 - np.argmax(isnan[..., ::-1], axis=-1)
        arg = np.where(isnan.any(axis=-1), last_nan, arg)
    y = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    p, q = np.divmod(arg, kw)
    idx = rows[np.arange(oh)[:, None], p] * w + cols[np.arange(ow)[None, :], q]
    empty = ~inside.any(axis=-1)  # padding only: no input element to point at
    idx = np.where(empty, -1, idx)
    return np.where(empty, -np.inf, y).astype(x.dtype, copy=False), idx.astype(np.int64)


def max_pool2d_backward(dy, indices, input_shape):
    """dx[n, c].flat[indices] += dy (windows that overlap add up; index -1, a window of padding only,
    passes nothing)."""
    n, c, h, w = input_shape
    bad = (indices < -1) | (indices >= h * w)
    if bad.any():
        k = int(np.argmax(bad.ravel()))
        raise ValueError(f"max_pool2d_backward: index {int(indices.ravel()[k])} at flat position {k} is "
                         f"outside [-1, {h * w}) for input ({h}, {w})")
    planes = np.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * (h * w)
    keep = indices >= 0
    flat = np.bincount((indices + planes)[keep], weights=np.asarray(dy, dtype=np.float64)[keep],
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


def _adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """[start, end) of each output's window along an axis: [floor(i size / out), ceil((i + 1) size / out))."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def _window_means(a, axis: int, windows):
    """Along `axis`, the mean over each window (one output per window)."""
    lead = (slice(None),) * axis
    if not windows:  # an output size of 0 (PyTorch allows it): an empty axis, not np.stack of nothing
        return np.zeros(a.shape[:axis] + (0,) + a.shape[axis + 1:], a.dtype)
    return np.stack([a[lead + (slice(s, e),)].mean(axis=axis) for s, e in windows], axis=axis)


def _window_means_adjoint(g, axis: int, size: int, windows):
    """The adjoint of _window_means: each output's gradient / its window's length, added over the window."""
    lead = (slice(None),) * axis
    out = np.zeros(g.shape[:axis] + (size,) + g.shape[axis + 1:])
    for i, (s, e) in enumerate(windows):
        out[lead + (slice(s, e),)] += g[lead + (slice(i, i + 1),)] / (e - s)
    return out


def adaptive_avg_pool2d_forward(x, output_size):
    wh, ww = _adaptive_windows(x.shape[2], output_size[0]), _adaptive_windows(x.shape[3], output_size[1])
    return _window_means(_window_means(x.astype(np.float64), 3, ww), 2, wh).astype(x.dtype)


def adaptive_avg_pool2d_backward(dy, input_shape):
    wh, ww = _adaptive_windows(input_shape[2], dy.shape[2]), _adaptive_windows(input_shape[3], dy.shape[3])
    g = dy.astype(np.float64)
    return _window_means_adjoint(_window_means_adjoint(g, 2, input_shape[2], wh), 3, input_shape[3],
                                 ww).astype(dy.dtype)


def interp_taps(size: int, out: int, mode: str, align_corners: bool, scale, dtype):
    """Two taps per output index, (i0, i1, weight of i1), with PyTorch's source-index rules,
    computed in `dtype` (float32 for float32 inputs, as ATen's opmath does). Nearest: i1 = i0.

    PyTorch's special cases are kept, for its float rounding and its NaN pattern: an output as long
    as the input copies it (nearest, and bilinear with i1 = i0 and weight 0, so an inf stays inf * 1 +
    inf * 0 = NaN as in PyTorch), and nearest at twice the input takes i // 2."""
    dst = np.arange(out)
    if out == size and mode != "nearest-exact":
        return dst, dst, np.zeros(out, dtype)
    if mode in ("nearest", "nearest-exact"):
        if mode == "nearest" and out == 2 * size:
            return dst // 2, dst // 2, np.zeros(out, dtype)
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
    i0 = np.minimum(src.astype(np.int64), size - 1)  # (src >= 0: the cast floors)
    return i0, i0 + (i0 < size - 1), np.clip(src - i0, 0, 1).astype(dtype)


def _along(a, axis: int, taps, nearest: bool):
    """Interpolate along `axis`: a[i0] (nearest) or (1 - l) a[i0] + l a[i1]."""
    i0, i1, lam = taps
    a0 = np.take(a, i0, axis=axis)
    if nearest:
        return a0
    lam = lam.reshape((-1,) + (1,) * (a.ndim - 1 - axis))
    return a0 * (1 - lam) + np.take(a, i1, axis=axis) * lam


def _along_adjoint(g, axis: int, size: int, taps, nearest: bool):
    """The adjoint of _along: g scattered back onto its taps (np.add.at adds repeated indices)."""
    i0, i1, lam = taps
    out = np.zeros(g.shape[:axis] + (size,) + g.shape[axis + 1:], g.dtype)
    o, gm = np.moveaxis(out, axis, 0), np.moveaxis(g, axis, 0)  # views: add.at indexes the first axis
    if nearest:
        np.add.at(o, i0, gm)
        return out
    lam = lam.reshape((-1,) + (1,) * (g.ndim - 1))
    np.add.at(o, i0, gm * (1 - lam))
    np.add.at(o, i1, gm * lam)
    return out


def _upsample_taps(in_hw, out_hw, mode, align_corners, scales, dtype):
    dt = np.float64 if dtype == np.float64 else np.float32  # ATen's opmath type for the taps and sums
    return dt, [interp_taps(in_hw[i], out_hw[i], mode, align_corners, scales[i], dt) for i in range(2)]


def upsample2d_forward(x, output_size, mode, align_corners, scales):
    """y from x's taps (along W, then H); mode 'nearest', 'nearest-exact' or 'bilinear'; scales (sh, sw)
    or Nones."""
    dt, (th, tw) = _upsample_taps(x.shape[2:], output_size, mode, align_corners, scales, x.dtype)
    nearest = mode != "bilinear"
    return _along(_along(x.astype(dt), 3, tw, nearest), 2, th, nearest).astype(x.dtype)


def upsample2d_backward(dy, input_shape, mode, align_corners, scales):
    dt, (th, tw) = _upsample_taps(input_shape[2:], dy.shape[2:], mode, align_corners, scales, dy.dtype)
    nearest = mode != "bilinear"
    g = _along_adjoint(dy.astype(dt), 2, input_shape[2], th, nearest)
    return _along_adjoint(g, 3, input_shape[3], tw, nearest).astype(dy.dtype)
