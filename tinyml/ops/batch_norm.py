"""Batch normalisation (torch.nn.functional.batch_norm) over (N, C, *): per-channel statistics over
the batch and every spatial position. With L the product of the spatial dims (1 for an (N, C)
input), each channel has M = N * L values.

    training:  mean_c = sum_{n,l} x / M,   var_c = sum_{n,l} (x - mean_c)^2 / M          (biased)
               y = (x - mean_c) invstd_c w_c + b_c,   invstd_c = 1 / sqrt(var_c + eps)
               running_mean <- (1 - m) running_mean + m mean_c
               running_var  <- (1 - m) running_var  + m var_c M / (M - 1)               (unbiased)
    eval:      the same y with running_mean / running_var in place of mean_c / var_c
The forward kernel updates the running statistics in place (one call, as PyTorch's
native_batch_norm), and not at all for an empty batch.

Backward. With xhat = (x - mean_c) invstd_c, the parameter gradients are
    db_c = sum_{n,l} dy,   dw_c = sum_{n,l} dy xhat
and in training, where mean_c and var_c are functions of x (d mean/dx = 1/M,
d var/dx = 2 (x - mean)/M), the chain rule through them gives
    dx = w_c invstd_c (dy - db_c / M - xhat dw_c / M)
while in eval the statistics are constants: dx = dy w_c invstd_c.

Forward saves x, weight and the statistics (mean, var) it used, never the normalised x; backward
recomputes xhat. Under create_graph=True the backward is the same formula in differentiable tensor
ops, so second derivatives are exact.
"""
from __future__ import annotations

from .. import dtypes as _dt
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor

__all__ = ["batch_norm"]


class BatchNormFn(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        """x (N, C, *). Training: the batch's statistics, which the kernel also folds into the
        running ones (in place, when given); eval: the running statistics."""
        if training:
            rm, rv = _kernel_writable(running_mean), _kernel_writable(running_var)
            y, mean, var = run("batch_norm_forward", x, weight, bias, None, None, eps, rm, rv, momentum)
            for given, written in ((running_mean, rm), (running_var, rv)):
                if given is not None:
                    if written is not given:
                        given.copy_(written.reshape(given.shape))
                    else:
                        given._version[0] += 1  # the kernel wrote its storage
        else:
            sd = _stats_dtype(x.dtype)
            mean, var = running_mean.reshape(-1).to(sd), running_var.reshape(-1).to(sd)
            y, mean, var = run("batch_norm_forward", x, weight, bias, mean, var, eps)
        ctx.save_for_backward(x, weight, mean, var)
        ctx.eps, ctx.training = eps, training
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, var = ctx.saved_tensors
        need = ctx.needs_input_grad
        if is_grad_enabled():  # create_graph: the same derivative from differentiable tensor ops
            dx, dw, db = BatchNormFn.formula(g, x, weight, mean, var, ctx.eps, ctx.training)
        else:
            dx, dw, db = run("batch_norm_backward", g, x, weight, mean, var, ctx.eps, ctx.training,
                             (bool(need[0]), bool(need[1]), bool(need[2])))
        return (dx if need[0] else None, dw if need[1] else None, db if need[2] else None) + (None,) * 5

    @staticmethod
    def formula(g, x, weight, mean, var, eps, training):
        """The backward of the module docstring in tensor ops, over x (N, C, *). In training the
        statistics are recomputed from x, so that the gradient is differentiable in x through them."""
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        dims = (0,) + tuple(range(2, x.ndim))
        if training:
            xc = x - x.mean(dims, keepdim=True)
            invstd = ((xc * xc).mean(dims, keepdim=True) + eps).rsqrt()
            xhat = xc * invstd
        else:
            invstd = (var.to(x.dtype) + eps).rsqrt().reshape(shape)
            xhat = (x - mean.to(x.dtype).reshape(shape)) * invstd
        db, dw = g.sum(dims), (g * xhat).sum(dims)
        scale = invstd if weight is None else invstd * weight.reshape(shape)
        if training:
            m = x.numel() // max(x.shape[1], 1)
            return scale * (g - db.reshape(shape) / m - xhat * dw.reshape(shape) / m), dw, db
        return g * scale, dw, db


def _kernel_writable(running: Tensor | None) -> Tensor | None:
    """A running statistic as the kernel updates it: itself (1-d, contiguous: written in place) or a
    contiguous 1-d copy that forward copies back."""
    if running is None or (running.ndim == 1 and running.is_contiguous()):
        return running
    return running.reshape(-1).contiguous()


def _stats_dtype(dtype):
    return _dt.float32 if dtype in (_dt.float16, _dt.bfloat16) else dtype


def _check(input, running_mean, running_var, weight, bias, training: bool) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"batch_norm(): argument 'input' must be a Tensor, not {type(input).__name__}")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"batch_norm(): expected a floating point input, got dtype {input.dtype}")
    c = input.shape[1] if input.ndim >= 2 else 0
    if input.ndim < 2:
        raise ValueError(f"batch_norm(): expected an input of shape (N, C, *) with at least 2 dims, got "
                         f"shape {list(input.shape)}")
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and (not isinstance(t, Tensor) or t.numel() != c):
            got = t.numel() if isinstance(t, Tensor) else type(t).__name__
            raise RuntimeError(f"{name} should contain {c} elements not {got} (input of shape "
                               f"{list(input.shape)})")
    if not training and (running_mean is None or running_var is None):
        raise RuntimeError("running_mean must be defined in evaluation mode" if running_mean is None
                           else "running_var must be defined in evaluation mode")
    if training and input.shape[0] * _prod(input.shape[2:]) == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                         f"{list(input.shape)}")


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of (N, C, *) by its batch statistics (training, updating the running
    statistics in place with `momentum` when they are given) or by running_mean / running_var
    (eval), then scale by `weight` and shift by `bias` (per channel, optional)."""
    _check(input, running_mean, running_var, weight, bias, training)
    w, b = _channel_vector(weight, input), _channel_vector(bias, input)
    if training and (running_mean is not None or running_var is not None) and momentum is None:
        raise TypeError("batch_norm(): momentum must be a float when training with running statistics, got "
                        "None (nn.BatchNorm's momentum=None passes 1 / num_batches_tracked)")
    return BatchNormFn.apply(input, w, b, running_mean, running_var, bool(training),
                             float(momentum) if momentum is not None else 0.0, float(eps))


def _channel_vector(p: Tensor | None, input: Tensor) -> Tensor | None:
    """weight / bias as (C,) in the input's dtype (no op recorded when it already is)."""
    if p is None:
        return None
    if p.ndim != 1:
        p = p.reshape(-1)
    return p if p.dtype is input.dtype else p.to(input.dtype)
