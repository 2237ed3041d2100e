"""Reference kernel for one step of the selective scan (mamba_ssm's selective_state_update), numpy,
in float64. Shapes: state (Bt, D, N), written in place; x, dt, z (Bt, D); A (D, N); B, C (Bt, G, N)
with D % G == 0 (the op turns (Bt, N) into G = 1); D_skip and dt_bias (D,). With
dt' = softplus(dt + dt_bias) (or dt + dt_bias), B and C repeated over the D / G channels of a group:

    state = exp(dt' A) * state + dt' B x                          (Bt, D, N)
    y     = sum_n C[n] state[n] + D_skip x                         out = y * silu(z)  (if z given)

which is one time step of csrc/scan.cpp's recurrence, from a given state instead of 0. softplus is
PyTorch's (threshold 20: dt' = v for v > 20).
"""
from __future__ import annotations

import numpy as np

__all__ = ["selective_state_update"]


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _per_channel(M, d):
    """B or C (Bt, G, N) as (Bt, D, N): each group's row repeated over its D / G channels."""
    return np.repeat(M, d // M.shape[1], axis=1)


def selective_state_update(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus):
    """out (Bt, D) in x's dtype; state updated in place."""
    bt, d = x.shape
    x64 = _f64(x)
    pre = _f64(dt) if dt_bias is None else _f64(dt) + _f64(dt_bias)[None, :]
    if dt_softplus:
        with np.errstate(over="ignore"):
            pre = np.where(pre > 20, pre, np.log1p(np.exp(np.minimum(pre, 20))))
    with np.errstate(over="ignore", invalid="ignore"):
        decay = np.exp(pre[..., None] * _f64(A)[None])  # (Bt, D, N)
        new = decay * _f64(state) + (pre * x64)[..., None] * _per_channel(_f64(B), d)
        y = np.einsum("bdn,bdn->bd", new, _per_channel(_f64(C), d))
        if D is not None:
            y = y + _f64(D)[None, :] * x64
        if z is not None:
            z64 = _f64(z)
            y = y * (z64 / (1 + np.exp(-z64)))  # PyTorch's silu: NaN at z = -inf
    state[...] = new.astype(state.dtype)
    return y.astype(x.dtype)
