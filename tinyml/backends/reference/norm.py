"""Reference normalisation kernels (numpy) over the last dim of a (rows, N) array.

    layer_norm:  mean = sum x / N,  rstd = 1 / sqrt(sum (x - mean)^2 / N + eps),  xhat = (x - mean) rstd
                 y = xhat w + b
                 dxhat = dy w;  dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
                 dw = sum_rows dy xhat;  db = sum_rows dy
    rms_norm:    rstd = 1 / sqrt(sum x^2 / N + eps),  xhat = x rstd,  y = xhat w
                 dx = rstd (dxhat - xhat mean(dxhat xhat));  dw = sum_rows dy xhat

Statistics (mean, rstd) have shape (rows,) and are float32 for float16/bfloat16 inputs (which
compute in float32), else the input's dtype. Backward recomputes xhat from x, mean and rstd.
"""
import numpy as np

from ...dtypes import is_half

__all__ = ["layer_norm_backward", "layer_norm_forward", "rms_norm_backward", "rms_norm_forward"]



def _up(a):
    return None if a is None else (a.astype(np.float32) if is_half(a.dtype) else a)


def layer_norm_forward(x, weight, bias, eps):
    xf = _up(x)
    with np.errstate(invalid="ignore", divide="ignore"):  # N == 0 gives NaN statistics, as in PyTorch
        mean = xf.mean(axis=-1)
        xc = xf - mean[:, None]
        rstd = 1.0 / np.sqrt((xc * xc).mean(axis=-1) + eps)
    y = xc * rstd[:, None]
    if weight is not None:
        y = y * _up(weight)
    if bias is not None:
        y = y + _up(bias)
    return y.astype(x.dtype, copy=False), mean.astype(xf.dtype, copy=False), rstd.astype(xf.dtype, copy=False)


def layer_norm_backward(dy, x, weight, mean, rstd):
    xf, g = _up(x), _up(dy)
    xhat = (xf - mean[:, None]) * rstd[:, None]
    dxhat = g * _up(weight) if weight is not None else g
    dx = rstd[:, None] * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                          - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    if weight is None:
        return dx.astype(x.dtype, copy=False), None, None
    dw = (g * xhat).sum(axis=0)
    db = g.sum(axis=0)
    return dx.astype(x.dtype, copy=False), dw.astype(weight.dtype, copy=False), db.astype(weight.dtype, copy=False)


def rms_norm_forward(x, weight, eps):
    xf = _up(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        rstd = 1.0 / np.sqrt((xf * xf).mean(axis=-1) + eps)
    y = xf * rstd[:, None]
    if weight is not None:
        y = y * _up(weight)
    return y.astype(x.dtype, copy=False), rstd.astype(xf.dtype, copy=False)


def rms_norm_backward(dy, x, weight, rstd):
    xf, g = _up(x), _up(dy)
    xhat = xf * rstd[:, None]
    dxhat = g * _up(weight) if weight is not None else g
    dx = rstd[:, None] * (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    if weight is None:
        return dx.astype(x.dtype, copy=False), None
    return dx.astype(x.dtype, copy=False), (g * xhat).sum(axis=0).astype(weight.dtype, copy=False)
