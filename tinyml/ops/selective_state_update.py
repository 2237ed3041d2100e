"""One step of the selective scan for generation, mamba_ssm's selective_state_update API: a single
fused kernel per layer and token instead of ~10 small ops.

    dt'   = softplus(dt + dt_bias) (or dt + dt_bias)                       (batch, D)
    state = exp(dt' A) * state + dt' B x                                   (batch, D, N), in place
    y     = C . state + D x,   out = y * silu(z)  (if z is given)          (batch, D)

B and C are (batch, N) or (batch, G, N), grouped over the D / G channels of a group. Stepping
through a sequence from a zero state gives selective_scan's outputs and last state. Differentiable
in x, dt, A, B, C, D, z and dt_bias (the state is a constant of the step, as conv_state is in
causal_conv1d_update); with s0 the state before the step, s1 after it, e = exp(dt' A):

    dy = dout silu(z)      dz = dout y silu'(z)      ds1 = dy C
    dx = dt' (ds1 . B) + D dy      ddt' = ds1 . (A e s0 + B x)      ddt = ddt' sigmoid(dt + dt_bias)
    dA = sum_batch ds1 dt' e s0    dB = sum_group ds1 dt' x    dC = sum_group dy s1    dD = sum_batch dy x
"""
from __future__ import annotations

from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor
from .activation import softplus
from .unary import exp, sigmoid

__all__ = ["selective_state_update"]


def _per_channel(M: Tensor, d: int) -> Tensor:
    """B or C (batch, G, N) as (batch, D, N): each group's row repeated over its D / G channels."""
    bt, g, n = M.shape
    return M.unsqueeze(2).expand(bt, g, d // g, n).reshape(bt, d, n)


def _per_group(dM: Tensor, g: int) -> Tensor:
    """A (batch, D, N) gradient summed back over the channels of each of the G groups."""
    bt, d, n = dM.shape
    return dM.reshape(bt, g, d // g, n).sum(2)


class SelectiveStateUpdateFn(Function):
    @staticmethod
    def forward(ctx, state, x, dt, A, B, C, D, z, dt_bias, dt_softplus):
        if any(ctx.needs_input_grad):  # the state before the kernel overwrites it
            ctx.save_for_backward(state.clone(), x, dt, A, B, C, D, z, dt_bias)
        ctx.dt_softplus = dt_softplus
        out = run("selective_state_update", state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)
        state._version[0] += 1  # written in place: an earlier saved copy of it is now stale
        return out

    @staticmethod
    def backward(ctx, dout):
        s0, x, dt, A, B, C, D, z, dt_bias = ctx.saved_tensors
        d, g = x.shape[1], B.shape[1]
        pre = dt if dt_bias is None else dt + dt_bias
        step = softplus(pre) if ctx.dt_softplus else pre  # (batch, D)
        Bd, Cd = _per_channel(B, d), _per_channel(C, d)  # (batch, D, N)
        e_s0 = exp(step.unsqueeze(-1) * A) * s0
        s1 = e_s0 + (step * x).unsqueeze(-1) * Bd
        dy, dz = dout, None
        if z is not None:
            y = (s1 * Cd).sum(-1)
            y = y + D * x if D is not None else y
            sz = sigmoid(z)
            dz = dout * y * sz * (1 + z * (1 - sz))
            dy = dout * z * sz
        ds1 = dy.unsqueeze(-1) * Cd  # (batch, D, N)
        ds1_B = (ds1 * Bd).sum(-1)
        dx = step * ds1_B + (D * dy if D is not None else 0)
        dstep = (ds1 * e_s0 * A).sum(-1) + ds1_B * x
        ddt = dstep * sigmoid(pre) if ctx.dt_softplus else dstep
        dA = (ds1 * e_s0 * step.unsqueeze(-1)).sum(0)
        dB = _per_group(ds1 * (step * x).unsqueeze(-1), g)
        dC = _per_group(dy.unsqueeze(-1) * s1, g)
        dD = (dy * x).sum(0) if D is not None else None
        dbias = ddt.sum(0) if dt_bias is not None else None
        return None, dx, ddt, dA, dB, dC, dD, dz, dbias, None


def _check(name: str, t, shape: tuple, dtype) -> None:
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"selective_state_update: {name} must be a Tensor or None, got {type(t).__name__}")
    if tuple(t.shape) != shape:
        raise ValueError(f"selective_state_update: {name} has shape {tuple(t.shape)}, expected {shape}")
    if t.dtype is not dtype:
        raise TypeError(f"selective_state_update: {name} has dtype {t.dtype} but x has dtype {dtype}; all "
                        "inputs must share one floating dtype")


def selective_state_update(state: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
                           D: Tensor | None = None, z: Tensor | None = None, dt_bias: Tensor | None = None,
                           dt_softplus: bool = False) -> Tensor:
    """One recurrence step: state (batch, dim, dstate) updated in place; x, dt, z (batch, dim);
    A (dim, dstate); B and C (batch, dstate) or (batch, ngroups, dstate); D, dt_bias (dim,).
    Returns out (batch, dim)."""
    if not isinstance(x, Tensor) or x.ndim != 2:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"selective_state_update: x must be a (batch, dim) Tensor, got {got}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"selective_state_update: x has dtype {x.dtype}; expected a floating dtype")
    bt, d = x.shape
    if not isinstance(state, Tensor) or state.ndim != 3 or tuple(state.shape[:2]) != (bt, d):
        got = tuple(state.shape) if isinstance(state, Tensor) else type(state).__name__
        raise ValueError(f"selective_state_update: state has shape {got}, expected ({bt}, {d}, dstate) for x "
                         f"of shape {tuple(x.shape)}")
    n = state.shape[2]
    dtype = x.dtype
    _check("state", state, (bt, d, n), dtype)
    _check("dt", dt, (bt, d), dtype)
    _check("A", A, (d, n), dtype)
    for name, M in (("B", B), ("C", C)):
        if not isinstance(M, Tensor) or M.ndim not in (2, 3) or M.shape[0] != bt or M.shape[-1] != n \
                or (M.ndim == 3 and (M.shape[1] < 1 or d % M.shape[1])):
            got = tuple(M.shape) if isinstance(M, Tensor) else type(M).__name__
            raise ValueError(f"selective_state_update: {name} has shape {got}, expected ({bt}, {n}) or "
                             f"({bt}, G, {n}) with G dividing dim = {d} (state {tuple(state.shape)})")
        _check(name, M, tuple(M.shape), dtype)
    _check("D", D, (d,), dtype)
    _check("z", z, (bt, d), dtype)
    _check("dt_bias", dt_bias, (d,), dtype)
    if is_grad_enabled() and state.requires_grad:
        raise RuntimeError(f"selective_state_update: state (shape {tuple(state.shape)}) requires grad but is "
                           "written in place; pass a state that does not require grad")
    B = B.unsqueeze(1) if B.ndim == 2 else B  # the kernels take (batch, G, dstate)
    C = C.unsqueeze(1) if C.ndim == 2 else C
    return SelectiveStateUpdateFn.apply(state, x, dt, A, B, C, D, z, dt_bias, bool(dt_softplus))
