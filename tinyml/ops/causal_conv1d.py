"""Causal depthwise conv1d with an optional fused SiLU (Mamba's short convolution), the API of Dao's
causal_conv1d package, and its single-step update for generation.

    pre[b, d, t] = bias[d] + sum_{k=0}^{K-1} weight[d, k] x[b, d, t-K+1+k]     (x[.., t<0] = 0)
    y = silu(pre) (activation "silu" or "swish") or y = pre (activation None)

which is F.conv1d(x, weight[:, None], bias, padding=K-1, groups=D)[..., :L] followed by the
activation. Backward (dpre = dy silu'(pre), the pre-activation recomputed, not stored):

    dx[b, d, j] = sum_k weight[d, k] dpre[b, d, j+K-1-k]   (terms with j+K-1-k < L)
    dweight[d, k] = sum_{b,t} dpre[b, d, t] x[b, d, t-K+1+k]      dbias[d] = sum_{b,t} dpre[b, d, t]

causal_conv1d_update(x, conv_state, weight, bias, activation): x (B, D) is the next input,
conv_state (B, D, S), S >= K - 1, the last S inputs, updated in place (shifted left by one, x
written last); y = act(bias + sum_k weight[:, k] window[:, :, k]) with window the last K entries of
cat(conv_state, x). With S = K this is transformers' Mamba cache (roll, write, dot with the weight).
It is differentiable in x, weight and bias (the state is a constant of the step).
"""
from __future__ import annotations

from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor
from .movement_copy import cat
from .unary import sigmoid

__all__ = ["causal_conv1d", "causal_conv1d_update"]

_ACTIVATIONS = (None, "silu", "swish")


class CausalConv1dFn(Function):
    once_differentiable = "causal_conv1d_backward"  # kernel-only backward: no create_graph formula

    @staticmethod
    def forward(ctx, x, weight, bias, silu):
        ctx.save_for_backward(x, weight, bias)
        ctx.silu = silu
        return run("causal_conv1d_forward", x, weight, bias, silu)

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias = ctx.saved_tensors
        dx, dweight, dbias = run("causal_conv1d_backward", x, weight, bias, dy, ctx.silu)
        return dx, dweight, dbias, None


class CausalConv1dUpdateFn(Function):
    @staticmethod
    def forward(ctx, x, conv_state, weight, bias, silu):
        if any(ctx.needs_input_grad):  # the state part of the window, copied before the kernel writes it
            s_len, k_width = conv_state.shape[2], weight.shape[1]
            past = conv_state[:, :, s_len + 1 - k_width:].clone()  # (B, D, K-1)
            ctx.save_for_backward(x, past, weight, bias)
        ctx.silu = silu
        y = run("causal_conv1d_update", x, conv_state, weight, bias, silu)
        conv_state._version[0] += 1  # written in place: an earlier saved copy of it is now stale
        return y

    @staticmethod
    def backward(ctx, dy):
        x, past, weight, bias = ctx.saved_tensors
        window = cat([past, x.unsqueeze(-1)], dim=-1)  # (B, D, K), built from x so create_graph sees it
        dpre = dy
        if ctx.silu:
            pre = (window * weight).sum(-1)  # (B, D)
            pre = pre + bias if bias is not None else pre
            s = sigmoid(pre)
            dpre = dy * s * (1 + pre * (1 - s))
        dx = dpre * weight[:, -1]  # only the last tap reads x; the state is a constant of the step
        dweight = (dpre.unsqueeze(-1) * window).sum(0)
        dbias = dpre.sum(0) if bias is not None else None
        return dx, None, dweight, dbias, None


def _silu_flag(activation) -> bool:
    if activation not in _ACTIVATIONS:
        raise ValueError(f"causal_conv1d: activation must be None, 'silu' or 'swish', got {activation!r}")
    return activation is not None


def _check_common(fn: str, x: Tensor, weight, bias, d: int, what_x: str) -> None:
    if not isinstance(weight, Tensor) or weight.ndim != 2 or weight.shape[0] != d or weight.shape[1] < 1:
        got = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"{fn}: weight has shape {got}, expected ({d}, width) with width >= 1 for x of "
                         f"shape {tuple(x.shape)} {what_x} (a conv1d weight (D, 1, K) is weight[:, 0])")
    if bias is not None and (not isinstance(bias, Tensor) or tuple(bias.shape) != (d,)):
        got = tuple(bias.shape) if isinstance(bias, Tensor) else type(bias).__name__
        raise ValueError(f"{fn}: bias has shape {got}, expected ({d},) for x of shape {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{fn}: x has dtype {x.dtype}; expected a floating dtype")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype is not x.dtype:
            raise TypeError(f"{fn}: {name} has dtype {t.dtype} but x has dtype {x.dtype}; all inputs must "
                            "share one floating dtype")


def causal_conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None,
                  activation: str | None = None) -> Tensor:
    """Causal depthwise conv1d of x (batch, dim, seqlen) with weight (dim, width) and bias (dim,),
    then SiLU if activation is "silu" (or "swish"). Returns (batch, dim, seqlen)."""
    silu = _silu_flag(activation)
    if not isinstance(x, Tensor) or x.ndim != 3:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"causal_conv1d: x must be a (batch, dim, seqlen) Tensor, got {got}")
    _check_common("causal_conv1d", x, weight, bias, x.shape[1], "(batch, dim, seqlen)")
    return CausalConv1dFn.apply(x, weight, bias, silu)


def causal_conv1d_update(x: Tensor, conv_state: Tensor, weight: Tensor, bias: Tensor | None = None,
                         activation: str | None = None) -> Tensor:
    """One generation step: x (batch, dim), conv_state (batch, dim, S) with S >= width - 1, updated in
    place (the oldest input dropped, x appended). Returns y (batch, dim)."""
    silu = _silu_flag(activation)
    if not isinstance(x, Tensor) or x.ndim != 2:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"causal_conv1d_update: x must be a (batch, dim) Tensor, got {got}")
    bt, d = x.shape
    _check_common("causal_conv1d_update", x, weight, bias, d, "(batch, dim)")
    k_width = weight.shape[1]
    if (not isinstance(conv_state, Tensor) or conv_state.ndim != 3 or tuple(conv_state.shape[:2]) != (bt, d)
            or conv_state.shape[2] < k_width - 1):
        got = tuple(conv_state.shape) if isinstance(conv_state, Tensor) else type(conv_state).__name__
        raise ValueError(f"causal_conv1d_update: conv_state has shape {got}, expected ({bt}, {d}, S) with "
                         f"S >= width - 1 = {k_width - 1} for x of shape {tuple(x.shape)} and weight of "
                         f"shape {tuple(weight.shape)}")
    if conv_state.dtype is not x.dtype:
        raise TypeError(f"causal_conv1d_update: conv_state has dtype {conv_state.dtype} but x has dtype "
                        f"{x.dtype}")
    if is_grad_enabled() and conv_state.requires_grad:
        raise RuntimeError(f"causal_conv1d_update: conv_state (shape {tuple(conv_state.shape)}) requires "
                           "grad but is written in place; pass a state that does not require grad")
    return CausalConv1dUpdateFn.apply(x, conv_state, weight, bias, silu)
