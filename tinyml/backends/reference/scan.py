"""Reference kernels for the selective scan (Mamba's S6 recurrence), numpy, a loop over time.

Shapes (mamba_ssm's selective_scan_ref): u, delta, z (Bt, D, L); A (D, N); B, C either (D, N)
(time-invariant) or (Bt, G, N, L) with D % G == 0 (input-dependent; the op turns (Bt, N, L)
into G = 1); D_skip and delta_bias (D,). With dt = softplus(delta + bias) (or delta + bias):

    x_t = exp(dt_t A) * x_{t-1} + dt_t B_t u_t          (x: (Bt, D, N), x_{-1} = 0)
    y_t = sum_n C_t[n] x_t[n] + D_skip u_t               out_t = y_t * silu(z_t)  (if z given)

Backward, by the reverse-time recurrence with h_t = dL/dx_t (h_L = dL/dlast_state):

    h_t   = h_{t+1} * exp(dt_{t+1} A) + dy_t C_t
    ddt_t = sum_n h_t (A exp(dt_t A) x_{t-1} + B_t u_t)      dA += h_t dt_t exp(dt_t A) x_{t-1}
    dB_t  = sum_d h_t dt_t u_t        dC_t = sum_d dy_t x_t      du_t = sum_n h_t dt_t B_t + D_skip dy_t

NaN and inf land where mamba's loop in PyTorch puts them: products per state in its order, the two
paths into dt (through exp(dt A) and dt B u) summed apart, x_{-1} = 0 kept in the products, the gate
y * silu(z) with silu(-inf) = NaN (csrc/scan.cpp follows the same rules).
"""
from __future__ import annotations

import numpy as np

__all__ = ["selective_scan_backward", "selective_scan_forward"]


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _silu(z):
    """PyTorch's z / (1 + e^-z): NaN at z = -inf (the gate multiplies by it, as mamba's loop does)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return z / (1 + np.exp(-z))


def _cast(a, like):
    return None if a is None else a.astype(like.dtype)


def _expand_bc(M, bt, d, length):
    """B or C as a (Bt, D, N, L) array (a broadcast view for the time-invariant form)."""
    if M.ndim == 2:
        return np.broadcast_to(M[None, :, :, None], (bt, d, M.shape[1], length))
    g = M.shape[1]
    return np.repeat(M, d // g, axis=1)


def _sum_bc(dM, shape):
    """Reduce a (Bt, D, N, L) gradient back to B's or C's own shape."""
    if len(shape) == 2:
        return dM.sum(axis=(0, 3))
    bt, g, n, length = shape
    return dM.reshape(bt, g, dM.shape[1] // g, n, length).sum(axis=2)  # (no -1: any size may be 0)


def _delta(delta, delta_bias, delta_softplus):
    pre = delta if delta_bias is None else delta + delta_bias[None, :, None]
    if not delta_softplus:
        return pre, None
    dt = np.where(pre > 20, pre, np.log1p(np.exp(np.minimum(pre, 20))))
    return dt, pre


def _states(u, dt, A, Bx):
    """All states x_t (Bt, D, L, N) and exp(dt A) (Bt, D, L, N), computed in float64."""
    bt, d, length = u.shape
    dA = np.exp(dt[..., None] * A[None, :, None, :])
    dBu = (dt * u)[..., None] * Bx.transpose(0, 1, 3, 2)
    xs = np.empty((bt, d, length, A.shape[1]))
    x = np.zeros((bt, d, A.shape[1]))
    for t in range(length):
        x = dA[:, :, t] * x + dBu[:, :, t]
        xs[:, :, t] = x
    return xs, dA


def selective_scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, keep_states=False):
    """(out, last_state, None): out (Bt, D, L) in u's dtype, last_state (Bt, D, N); the reference
    keeps nothing for its backward (keep_states is for the kernels that do)."""
    f64 = _f64
    u64, A64 = f64(u), f64(A)
    bt, d, length = u.shape
    dt, _ = _delta(f64(delta), f64(delta_bias), delta_softplus)
    xs, _ = _states(u64, dt, A64, _expand_bc(f64(B), bt, d, length))
    y = np.einsum("bdln,bdnl->bdl", xs, _expand_bc(f64(C), bt, d, length))
    if D is not None:
        y = y + f64(D)[None, :, None] * u64
    if z is not None:
        y = y * _silu(f64(z))
    last = xs[:, :, -1] if length else np.zeros((bt, d, A.shape[1]))
    return y.astype(u.dtype), last.astype(u.dtype), None


def selective_scan_backward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, dout, dlast, states=None):
    """(du, ddelta, dA, dB, dC, dD, dz, ddelta_bias); None for the absent optional inputs. states (what
    a forward kept) is not needed: the states are recomputed."""
    f64 = _f64
    u64, A64, dout = f64(u), f64(A), f64(dout)
    bt, d, length = u.shape
    dt, pre = _delta(f64(delta), f64(delta_bias), delta_softplus)
    Bx, Cx = _expand_bc(f64(B), bt, d, length), _expand_bc(f64(C), bt, d, length)
    xs, dA_all = _states(u64, dt, A64, Bx)
    dz = None
    if z is not None:
        z64 = f64(z)
        sig = 1 / (1 + np.exp(-z64))
        y = np.einsum("bdln,bdnl->bdl", xs, Cx)
        if D is not None:
            y = y + f64(D)[None, :, None] * u64
        dz = dout * y * sig * (1 + z64 * (1 - sig))
        dy = dout * _silu(z64)
    else:
        dy = dout
    n = A.shape[1]
    h = np.zeros((bt, d, n)) if dlast is None else f64(dlast).copy()
    ddt = np.zeros((bt, d, length))
    du = np.zeros((bt, d, length))
    dA = np.zeros((d, n))
    dBx = np.zeros((bt, d, n, length))
    dCx = np.einsum("bdl,bdln->bdnl", dy, xs)
    for t in range(length - 1, -1, -1):
        h = h + dy[:, :, t, None] * Cx[:, :, :, t]
        x_prev = xs[:, :, t - 1] if t > 0 else np.zeros((bt, d, n))
        ea = dA_all[:, :, t]
        # per-state products, the two paths into dt summed apart (NaN where infs of both signs meet)
        hx = h * x_prev * ea  # dL/d exp(dt A) times exp(dt A)
        hB = h * Bx[:, :, :, t]
        ddt[:, :, t] = np.sum(hx * A64[None], axis=-1) + np.sum(hB * u64[:, :, t, None], axis=-1)
        dA += np.sum(hx * dt[:, :, t, None], axis=0)
        dBx[:, :, :, t] = h * (dt[:, :, t] * u64[:, :, t])[..., None]
        du[:, :, t] = np.sum(hB * dt[:, :, t, None], axis=-1)
        h = h * ea
    dD = None
    if D is not None:
        du = du + f64(D)[None, :, None] * dy
        dD = np.sum(dy * u64, axis=(0, 2))
    if delta_softplus:
        ddt = ddt / (1 + np.exp(-pre))
    ddelta_bias = None if delta_bias is None else ddt.sum(axis=(0, 2))
    return (_cast(du, u), _cast(ddt, delta), _cast(dA, A), _cast(_sum_bc(dBx, B.shape), B),
            _cast(_sum_bc(dCx, C.shape), C), _cast(dD, D), _cast(dz, z), _cast(ddelta_bias, delta_bias))
