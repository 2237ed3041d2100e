"""Reference batch_norm kernels (numpy) over x of shape (N, C, *), seen as (N, C, L) with L the
product of the trailing dims: statistics per channel c over its M = N * L values.

    forward:   mean_c = sum x / M,  var_c = sum (x - mean_c)^2 / M   (when not given: training)
               y = (x - mean_c) / sqrt(var_c + eps) * w_c + b_c
               running_mean <- (1 - m) running_mean + m mean_c        (in place, when given;
               running_var  <- (1 - m) running_var + m var_c M / (M - 1)  not for M = 0)
    backward:  xhat = (x - mean_c) invstd_c,  db_c = sum dy,  dw_c = sum dy xhat
               training: dx = w_c invstd_c (dy - db_c / M - xhat dw_c / M)
               eval:     dx = dy w_c invstd_c

As the oracle it computes in float64 whatever the input dtype. The mean is summed about the
channel's first value k (mean = k + mean(x - k)), so a constant channel has its exact mean and a
zero variance (y = b); NaN or inf in a channel makes that channel NaN, as in PyTorch. Statistics
are float32 for float16/bfloat16/float32 inputs and float64 for float64 ones; an empty channel
(M = 0) has NaN statistics and an empty output. dw and db are sums whether or not the op has a
weight (w = 1 without one); an entry of the result is None where `needs` says it is not wanted.
"""
import numpy as np

from ...dtypes import is_half

__all__ = ["batch_norm_backward", "batch_norm_forward"]


def _wide(a):
    return None if a is None else a.astype(np.float64, copy=False)


def _channel(v):
    return v[None, :, None]


def _as_3d(a):
    return a.reshape(a.shape[0], a.shape[1], int(np.prod(a.shape[2:], dtype=np.int64)))


def batch_norm_forward(x, weight, bias, mean, var, eps, running_mean=None, running_var=None, momentum=0.0):
    """(y, mean, var): y normalised by the given statistics, or by the batch's when mean is None
    (which then also move running_mean / running_var, in place, by `momentum`)."""
    xf = _wide(_as_3d(x))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if mean is None:
            m = xf.shape[0] * xf.shape[2]
            k = xf[:1, :, :1] if m else np.zeros((1, xf.shape[1], 1))
            k = np.where(np.isfinite(k), k, 0.0)
            mean_w = (k + (xf - k).sum(axis=(0, 2), keepdims=True) / m)[0, :, 0]
            var_w = ((xf - _channel(mean_w)) ** 2).sum(axis=(0, 2)) / m
        else:
            mean_w, var_w = _wide(mean), _wide(var)
        y = (xf - _channel(mean_w)) / np.sqrt(_channel(var_w) + eps)
        if weight is not None:
            y = y * _channel(_wide(weight))
        if bias is not None:
            y = y + _channel(_wide(bias))
        m = xf.shape[0] * xf.shape[2]
        if mean is None and m:
            if running_mean is not None:
                running_mean[...] = (1.0 - momentum) * _wide(running_mean) + momentum * mean_w
            if running_var is not None:
                unbiased = var_w * (m / max(m - 1, 1))
                running_var[...] = (1.0 - momentum) * _wide(running_var) + momentum * unbiased
    sd = np.float32 if is_half(x.dtype) else x.dtype
    return y.reshape(x.shape).astype(x.dtype), mean_w.astype(sd), var_w.astype(sd)


def batch_norm_backward(dy, x, weight, mean, var, eps, training, needs=(True, True, True)):
    """(dx, dw, db) of y = batch_norm_forward(x, weight, bias, ...) given the statistics it used."""
    xf, g = _wide(_as_3d(x)), _wide(_as_3d(dy))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        invstd = 1.0 / np.sqrt(_wide(var) + eps)
        xhat = (xf - _channel(_wide(mean))) * _channel(invstd)
        db = g.sum(axis=(0, 2))
        dw = (g * xhat).sum(axis=(0, 2))
        dx = None
        if needs[0]:
            scale = invstd if weight is None else invstd * _wide(weight)
            if training:
                m = xf.shape[0] * xf.shape[2]
                dx = _channel(scale) * (g - _channel(db) / m - xhat * _channel(dw) / m)
            else:
                dx = g * _channel(scale)
            dx = dx.reshape(x.shape).astype(x.dtype)
    pdt = x.dtype if weight is None else weight.dtype
    return dx, dw.astype(pdt) if needs[1] else None, db.astype(pdt) if needs[2] else None
