"""Gradient utilities (torch.nn.utils): clipping by norm or value, flattening parameters.

    clip_grad_norm_: total = || (||g_1||_p, ..., ||g_n||_p) ||_p  (max |g| for p = inf);
                     every g <- g * min(1, max_norm / (total + 1e-6))

When the coefficient is exactly 1 (the norm is under max_norm) the gradients are left as they are, which
is what multiplying by 1 gives bit for bit; that skips one op per parameter tensor on most steps. While
tinyml.compile records a function (the Trainer's compiled step) the multiplies run as always: a replay
repeats kernels and cannot branch on a value read back with .item().
"""
from __future__ import annotations

import math
from collections.abc import Iterable

from ... import _capture_record, ops
from ...autograd import no_grad
from ...tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "parameters_to_vector",
           "vector_to_parameters"]


def _params(parameters) -> list[Tensor]:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def _norm(t: Tensor, norm_type: float) -> Tensor:
    if norm_type == math.inf:
        return t.abs().amax()
    if norm_type == -math.inf:
        return t.abs().amin()
    if norm_type == 2.0:
        return (t * t).sum().sqrt()
    if norm_type == 1.0:
        return t.abs().sum()
    if norm_type == 0.0:
        return (t != 0).sum().to(t.dtype)
    return (t.abs() ** norm_type).sum() ** (1.0 / norm_type)


def _eager() -> bool:
    """False while tinyml.compile records kernels (a replay cannot branch on a value read with .item())."""
    return _capture_record._active is None


def get_total_norm(tensors: Iterable[Tensor] | Tensor, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """The p-norm of the norms of `tensors` (as if they were one concatenated vector)."""
    tensors = _params(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return ops.tensor(0.0)
    with no_grad():
        norms = [_norm(t.detach(), norm_type) for t in tensors]
        device = norms[0].device
        norms = [n.to(device) for n in norms]
        if len(norms) == 1:
            total = norms[0]
        else:
            dtype = norms[0].dtype
            total = _norm(ops.stack([n.to(dtype) for n in norms]), norm_type)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is "
                           f"non-finite ({total.item()}), so it cannot be clipped. To disable this error "
                           "and scale the gradients by the non-finite norm anyway, set "
                           "`error_if_nonfinite=False`")
    return total


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None) -> Tensor:
    """Scale all gradients together so their total norm is at most max_norm; returns the total norm
    before clipping (a 0-d tensor)."""
    params = [p for p in _params(parameters) if p.grad is not None]
    if not params:
        return ops.tensor(0.0)
    total = get_total_norm([p.grad for p in params], norm_type, error_if_nonfinite)
    with no_grad():
        coef = (float(max_norm) / (total + 1e-6)).clamp(max=1.0)
        if coef.device.type == "cpu" and _eager() and coef.item() == 1.0:  # g * 1 == g bit for bit
            return total
        for p in params:
            g = p.grad
            g.mul_(coef.to(g.device) if g.device != coef.device else coef)
    return total


def clip_grad_value_(parameters, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient element to [-clip_value, clip_value] in place."""
    clip_value = float(clip_value)
    with no_grad():
        for p in _params(parameters):
            if p.grad is not None:
                p.grad.clamp_(-clip_value, clip_value)


def parameters_to_vector(parameters) -> Tensor:
    """All parameters flattened and concatenated into one 1-d tensor."""
    return ops.cat([p.reshape(-1) for p in _params(parameters)])


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copy consecutive slices of `vec` into the parameters (the inverse of parameters_to_vector)."""
    params = _params(parameters)
    n = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.shape[0] != n:
        raise RuntimeError(f"vector_to_parameters: expected a 1-d vector of {n} elements, got shape "
                           f"{tuple(vec.shape)}")
    offset = 0
    with no_grad():
        for p in params:
            k = p.numel()
            p.copy_(vec[offset:offset + k].reshape(p.shape))
            offset += k
