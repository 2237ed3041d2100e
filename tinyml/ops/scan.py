"""The selective scan (Mamba's S6 recurrence) as one fused op, mamba_ssm's selective_scan_fn API.

    dt_t = softplus(delta_t + delta_bias) (or delta_t + delta_bias)
    x_t  = exp(dt_t A) * x_{t-1} + dt_t B_t u_t          x: (batch, D, N), x_{-1} = 0
    y_t  = C_t . x_t + D u_t                             out = y * silu(z)  (if z is given)

Forward and backward are single kernels: the backward runs the reverse-time recurrence
(h_t = h_{t+1} exp(dt_{t+1} A) + dy_t C_t) instead of differentiating a Python loop. When a gradient
will be needed, the forward kernel also returns what its backward wants kept (the cpu float32
kernel: the state entering every 32 steps, so that the backward recomputes the states chunk by
chunk without a pass over the whole sequence first, as mamba_ssm's CUDA kernel does; None where a
backend keeps nothing).
"""
from __future__ import annotations

from ..autograd import Function
from ..backends import run
from ..tensor import Tensor
from .creation import zeros_like

__all__ = ["selective_scan"]


class SelectiveScanFn(Function):
    once_differentiable = "selective_scan_backward"  # kernel-only backward: no create_graph formula

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        keep = True in ctx.needs_input_grad  # all False under no_grad
        out, last, states = run("selective_scan_forward", u, delta, A, B, C, D, z, delta_bias,
                                delta_softplus, keep)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, states)
        ctx.delta_softplus = delta_softplus
        ctx.set_materialize_grads(False)
        return out, last

    @staticmethod
    def backward(ctx, dout, dlast):
        *saved, states = ctx.saved_tensors
        if dout is None:
            if dlast is None:
                return (None,) * 9
            dout = zeros_like(saved[0])
        grads = run("selective_scan_backward", *saved, ctx.delta_softplus, dout, dlast, states)
        return tuple(grads) + (None,)


def _check(name: str, t, shapes: tuple, dtype) -> None:
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"selective_scan: {name} must be a Tensor or None, got {type(t).__name__}")
    if tuple(t.shape) not in shapes:
        want = " or ".join(str(s) for s in shapes)
        raise ValueError(f"selective_scan: {name} has shape {tuple(t.shape)}, expected {want}")
    if t.dtype is not dtype:
        raise TypeError(f"selective_scan: {name} has dtype {t.dtype} but u has dtype {dtype}; all inputs "
                        "must share one floating dtype (float32 or float64)")


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                   z: Tensor | None = None, delta_bias: Tensor | None = None, delta_softplus: bool = False,
                   return_last_state: bool = False):
    """Selective scan over u (batch, D, L): A (D, N); B and C (D, N), (batch, N, L) or
    (batch, G, N, L); D and delta_bias (D,); z (batch, D, L). Returns out (batch, D, L), and
    the last state (batch, D, N) with return_last_state=True."""
    if not isinstance(u, Tensor) or u.ndim != 3:
        raise ValueError(f"selective_scan: u must be a (batch, D, L) Tensor, got "
                         f"{tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__}")
    if not u.dtype.is_floating_point:
        raise TypeError(f"selective_scan: u has dtype {u.dtype}; expected a floating dtype (float32 or "
                        f"float64)")
    bt, d, length = u.shape
    if not isinstance(A, Tensor) or A.ndim != 2 or A.shape[0] != d:
        raise ValueError(f"selective_scan: A must have shape ({d}, N) for u of shape {tuple(u.shape)}, got "
                         f"{tuple(A.shape) if isinstance(A, Tensor) else type(A).__name__}")
    n = A.shape[1]
    dt = u.dtype
    _check("delta", delta, ((bt, d, length),), dt)
    _check("A", A, ((d, n),), dt)
    for name, M in (("B", B), ("C", C)):
        if M is None:
            raise ValueError(f"selective_scan: {name} is required")
        g = M.shape[1] if isinstance(M, Tensor) and M.ndim == 4 else 1
        _check(name, M, ((d, n), (bt, n, length), (bt, g, n, length)), dt)
        if M.ndim == 4 and d % g:
            raise ValueError(f"selective_scan: {name} has {g} groups (shape {tuple(M.shape)}), which must "
                             f"divide D = {d}")
    _check("D", D, ((d,),), dt)
    _check("z", z, ((bt, d, length),), dt)
    _check("delta_bias", delta_bias, ((d,),), dt)
    # The kernels take B and C as (D, N) or (batch, G, N, L): (batch, N, L) is one group.
    B = B.unsqueeze(1) if B.ndim == 3 else B
    C = C.unsqueeze(1) if C.ndim == 3 else C
    out, last = SelectiveScanFn.apply(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus))
    return (out, last) if return_last_state else out
