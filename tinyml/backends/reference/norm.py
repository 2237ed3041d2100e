"""Reference normalisation kernels (numpy) over the last dim of a (rows, N) array.

    layer_norm:  mean = sum x / N,  rstd = 1 / sqrt(sum (x - mean)^2 / N + eps),  xhat = (x - mean) rstd
                 y = xhat w + b
                 dxhat = dy w;  dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
                 dw = sum_rows dy xhat;  db = sum_rows dy
    rms_norm:    rstd = 1 / sqrt(sum x^2 / N + eps),  xhat = x rstd,  y = xhat w
                 dx = rstd (dxhat - xhat mean(dxhat xhat));  dw = sum_rows dy xhat
    add_layer_norm: s = x + residual (in x's dtype), y = layer_norm(s) over s's last dim, any
                 leading dims (statistics of the leading shape); backward dx = ds + layer_norm's dx

As the oracle, it computes in float64 whatever the input dtype, so float32 rows up to float32's
max (whose squares overflow float32 from |x| ~ 1e19) normalise to finite values; the mean is
summed about each row's first element (mean = k + mean(x - k)), so a constant row has its exact
mean and a zero variance (y = b), as PyTorch's Welford mean gives. NaN or inf in a row gives a NaN
row (rms_norm: x * 0 where the mean square is inf, as PyTorch). Statistics (mean, rstd) have
shape (rows,) and are float32 for float16/bfloat16/float32 inputs and float64 for float64 ones
(NaN for rows of N = 0, whose output is empty); backward recomputes xhat from x, mean and rstd.
"""
import numpy as np

from ...dtypes import is_half

__all__ = ["add_layer_norm_backward", "add_layer_norm_forward", "layer_norm_backward", "layer_norm_forward",
           "rms_norm_backward", "rms_norm_forward"]


def _wide(a):
    return None if a is None else a.astype(np.float64, copy=False)


def _stats_dtype(x):
    return np.float32 if is_half(x.dtype) else x.dtype


def _out(y, like):
    return y.astype(like.dtype, copy=False)


def _mean(a):
    """Mean over the last dim, kept; NaN for an empty dim (0 / 0, without numpy's warning)."""
    return a.sum(axis=-1, keepdims=True) / a.shape[-1]


def _affine(y, weight, bias):
    if weight is not None:
        y = y * _wide(weight)
    if bias is not None:
        y = y + _wide(bias)
    return y


def layer_norm_forward(x, weight, bias, eps):
    xf = _wide(x)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # N == 0: NaN statistics, as PyTorch
        k = xf[:, :1] if xf.shape[1] else np.zeros((xf.shape[0], 1))
        k = np.where(np.isfinite(k), k, 0.0)
        mean = (k + _mean(xf - k))[:, 0]
        xc = xf - mean[:, None]
        rstd = 1.0 / np.sqrt(_mean(xc * xc)[:, 0] + eps)
        y = _affine(xc * rstd[:, None], weight, bias)
    sd = _stats_dtype(x)
    return _out(y, x), mean.astype(sd), rstd.astype(sd)


def layer_norm_backward(dy, x, weight, mean, rstd):
    xf, g, mean, rstd = _wide(x), _wide(dy), _wide(mean), _wide(rstd)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        xhat = (xf - mean[:, None]) * rstd[:, None]
        dxhat = g * _wide(weight) if weight is not None else g
        dx = rstd[:, None] * (dxhat - _mean(dxhat) - xhat * _mean(dxhat * xhat))
        if weight is None:
            return _out(dx, x), None, None
        dw, db = (g * xhat).sum(axis=0), g.sum(axis=0)
    return _out(dx, x), _out(dw, weight), _out(db, weight)


def rms_norm_forward(x, weight, eps):
    xf = _wide(x)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rstd = 1.0 / np.sqrt(_mean(xf * xf)[:, 0] + eps)
        y = _affine(xf * rstd[:, None], weight, None)
    return _out(y, x), rstd.astype(_stats_dtype(x))


def rms_norm_backward(dy, x, weight, rstd):
    xf, g, rstd = _wide(x), _wide(dy), _wide(rstd)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        xhat = xf * rstd[:, None]
        dxhat = g * _wide(weight) if weight is not None else g
        dx = rstd[:, None] * (dxhat - xhat * _mean(dxhat * xhat))
        if weight is None:
            return _out(dx, x), None
        dw = (g * xhat).sum(axis=0)
    return _out(dx, x), _out(dw, weight)


def _as_rows(a):
    n = a.shape[-1]
    return a.reshape(int(np.prod(a.shape[:-1], dtype=np.int64)), n)


def add_layer_norm_forward(x, residual, weight, bias, eps):
    s = x + residual
    y, mean, rstd = layer_norm_forward(_as_rows(s), weight, bias, eps)
    return s, y.reshape(s.shape), mean.reshape(s.shape[:-1]), rstd.reshape(s.shape[:-1])


def add_layer_norm_backward(dy, ds, s, weight, mean, rstd):
    dx, dw, db = layer_norm_backward(_as_rows(dy), _as_rows(s), weight, mean.reshape(-1), rstd.reshape(-1))
    dx = dx.reshape(s.shape)
    return (dx if ds is None else dx + ds), dw, db
