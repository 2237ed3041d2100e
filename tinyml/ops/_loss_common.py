"""Argument handling shared by the losses: reductions (with PyTorch's legacy flags) and the
(N, C, d1, ...) -> (rows, C) layout that the class-index kernels take."""
from __future__ import annotations

from .. import dtypes as _dt
from ..tensor import Tensor

REDUCTIONS = ("none", "mean", "sum")


def legacy_reduction(size_average, reduce, reduction: str, allowed: tuple = REDUCTIONS) -> str:
    """The reduction string, honouring the deprecated size_average/reduce flags when given."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "none" if not reduce else ("mean" if size_average else "sum")
    if reduction not in allowed and reduction != "batchmean":
        raise ValueError(f"{reduction} is not a valid value for reduction (expected one of "
                         f"{', '.join(allowed)})")
    return reduction


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"{reduction} is not a valid value for reduction (expected one of "
                     f"{', '.join(REDUCTIONS)})")


def float_input(x, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be a Tensor, not {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"{name}(): expected a floating point input, got dtype {x.dtype}")
    return x


def class_rows(x: Tensor, target: Tensor, name: str) -> tuple[Tensor, Tensor, tuple]:
    """(x as (rows, C) with the class dim last, target as (rows,) int64, the unreduced loss shape).

    Accepted layouts (PyTorch's): x (C,) with a 0-d target; x (N, C) with target (N,);
    x (N, C, d1, ...) with target (N, d1, ...)."""
    if not isinstance(target, Tensor):
        raise TypeError(f"{name}(): argument 'target' must be a Tensor, not {type(target).__name__}")
    if not target.dtype.is_integer:
        raise RuntimeError(f"{name}: expected target of class indices with an integer dtype (int64), got "
                           f"{target.dtype} (target shape {tuple(target.shape)}, input shape "
                           f"{tuple(x.shape)})")
    if x.ndim == 1:
        if target.ndim != 0:
            raise RuntimeError(f"{name}: for an unbatched input of shape {tuple(x.shape)} the target must be "
                               f"0-d, got target of shape {tuple(target.shape)}")
        rows, t, out_shape = x.reshape(1, x.shape[0]), target.reshape(1), ()
    else:
        if target.ndim == 0 or target.shape[0] != x.shape[0]:
            raise ValueError(f"Expected input batch_size ({x.shape[0]}) to match target batch_size "
                             f"({target.shape[0] if target.ndim else 'a 0-d target'}); input shape "
                             f"{tuple(x.shape)}, target shape {tuple(target.shape)}")
        expected = (x.shape[0],) + tuple(x.shape[2:])
        if tuple(target.shape) != expected:
            raise RuntimeError(f"{name}: expected target of shape {expected} for input of shape "
                               f"{tuple(x.shape)}, got target of shape {tuple(target.shape)}")
        if x.ndim > 2:  # classes last, so each row of the kernel is one position's logits
            x = x.permute(0, *range(2, x.ndim), 1)
        n_rows = target.numel()  # not reshape(-1, C): with C = 0 the -1 would be ambiguous
        rows, t, out_shape = x.reshape(n_rows, x.shape[-1]), target.reshape(-1), tuple(target.shape)
    if t.dtype is not _dt.int64:
        t = t.to(_dt.int64)
    return rows.contiguous(), t.contiguous(), out_shape  # the kernels take contiguous rows
