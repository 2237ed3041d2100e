"""Reference kernels for the causal depthwise conv1d (Dao's causal_conv1d_fn), numpy, in float64.

Shapes: x (B, D, L), weight (D, K), bias (D,) or None; silu: whether to apply SiLU. With zero
left padding (terms before t = 0 are absent, not 0 * w, as in PyTorch's padded conv1d):

    pre[b, d, t] = bias[d] + sum_{k: t-K+1+k >= 0} weight[d, k] x[b, d, t-K+1+k]
    y = silu(pre) = pre / (1 + e^-pre)          (or y = pre)

Backward, with dpre = dy silu'(pre) = dy s (1 + pre (1 - s)), s = sigmoid(pre) (or dpre = dy):

    dx[b, d, j]  = sum_{k: j+K-1-k < L} weight[d, k] dpre[b, d, j+K-1-k]
    dweight[d, k] = sum_{b, t} dpre[b, d, t] x[b, d, t-K+1+k]      dbias[d] = sum_{b, t} dpre[b, d, t]

The single-step update for generation: conv_state (B, D, S) with S >= K - 1 holds the last S inputs;
window = cat(conv_state, x)[..., -K:], y = act(bias + sum_k weight[:, k] window[..., k]), and
conv_state becomes cat(conv_state, x)[..., -S:] (written in place). With S = K this is the rolling
buffer of transformers' Mamba (roll left by one, put x last, dot with the weight).
"""
from __future__ import annotations

import numpy as np

__all__ = ["causal_conv1d_backward", "causal_conv1d_forward", "causal_conv1d_update"]


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _pre(x, weight, bias):
    """bias + the causal sum, (B, D, L) in float64; shifts by s = K-1-k skip the padded terms."""
    x, w = _f64(x), _f64(weight)
    length, k_width = x.shape[2], w.shape[1]
    pre = np.zeros(x.shape)
    for k in range(k_width):
        s = k_width - 1 - k
        if s < length:
            pre[:, :, s:] += w[None, :, k, None] * x[:, :, :length - s]
    if bias is not None:
        pre += _f64(bias)[None, :, None]
    return pre


def _silu(pre):
    with np.errstate(over="ignore", invalid="ignore"):
        return pre / (1 + np.exp(-pre))


def _silu_grad(pre, dy):
    with np.errstate(over="ignore", invalid="ignore"):
        s = 1 / (1 + np.exp(-pre))
        return dy * s * (1 + pre * (1 - s))


def causal_conv1d_forward(x, weight, bias, silu):
    """y (B, D, L) in x's dtype."""
    pre = _pre(x, weight, bias)
    return (_silu(pre) if silu else pre).astype(x.dtype)


def causal_conv1d_backward(x, weight, bias, dy, silu):
    """(dx, dweight, dbias); dbias is None without a bias."""
    x64, w = _f64(x), _f64(weight)
    dpre = _f64(dy)
    if silu:
        dpre = _silu_grad(_pre(x, weight, bias), dpre)
    length, k_width = x.shape[2], w.shape[1]
    dx = np.zeros(x.shape)
    dw = np.zeros(w.shape)
    for k in range(k_width):
        s = k_width - 1 - k
        if s < length:
            dx[:, :, :length - s] += w[None, :, k, None] * dpre[:, :, s:]
            dw[:, k] = np.einsum("bdt,bdt->d", dpre[:, :, s:], x64[:, :, :length - s])
    db = None if bias is None else dpre.sum(axis=(0, 2)).astype(bias.dtype)
    return dx.astype(x.dtype), dw.astype(weight.dtype), db


def causal_conv1d_update(x, conv_state, weight, bias, silu):
    """y (B, D) for one new input x (B, D); conv_state (B, D, S) is updated in place."""
    k_width, s_len = weight.shape[1], conv_state.shape[2]
    full = np.concatenate([_f64(conv_state), _f64(x)[:, :, None]], axis=2)  # (B, D, S + 1)
    pre = np.einsum("bdk,dk->bd", full[:, :, s_len + 1 - k_width:], _f64(weight))
    if bias is not None:
        pre = pre + _f64(bias)[None, :]
    conv_state[...] = full[:, :, 1:].astype(conv_state.dtype)
    return (_silu(pre) if silu else pre).astype(x.dtype)
