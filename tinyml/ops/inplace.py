"""In-place ops (`add_`, `mul_`, `copy_`, `zero_`, `masked_fill_`, `clamp_`, ...), PyTorch-style.

Every in-place op is its out-of-place twin followed by `apply_inplace(target, result)`:

  1. result's values are written into target's storage (so views of target see them) and the
     storage's version counter is bumped: a tensor saved for backward before the write then
     raises at backward, as in PyTorch;
  2. when autograd records, target takes result's place in the graph (its grad_fn becomes
     result's node), so gradients flow through the op as if it had been out-of-place.

What PyTorch forbids is refused with its message: in-place on a leaf that requires grad (outside
no_grad), an out-of-place result whose shape or dtype target cannot hold. One thing PyTorch
supports is refused here with a clear error: recording an in-place write through a view, since
the view's base would not see the new graph (write through the base with indexing instead).
"""
from __future__ import annotations

from .. import autograd
from ..autograd import Context
from ..backends import run
from ..tensor import Tensor
from . import creation, elementwise, pointwise, scatter, unary
from ._broadcast import broadcast_shapes
from .movement import expand

__all__ = ["apply_inplace", "add_", "sub_", "mul_", "div_", "pow_", "neg_", "exp_", "sqrt_", "zero_", "fill_",
           "copy_", "masked_fill_", "clamp_", "clip_", "uniform_", "normal_", "bernoulli_", "index_add_",
           "scatter_", "scatter_add_"]


class _Overwritten:
    """Graph node of a tensor overwritten by values that do not depend on anything requiring grad:
    gradients stop here."""

    __name__ = "Overwrite"

    @staticmethod
    def backward(ctx, g):
        return ()


def _snapshot_saved(node: Context, target: Tensor) -> None:
    """If `node` saved target (or a view of its storage), keep a private copy of those values:
    they are about to be overwritten, and backward needs the old ones."""
    if not node._saved:
        return
    entries = []
    for e in node._saved:
        if e is not None and e[0]._version is target._version:
            copy = Tensor._make(e[0]._data, e[0].device).clone()  # a tensor or a SavedOutput's values
            e = (copy, copy._version[0])
        entries.append(e)
    node._saved = tuple(entries)


def apply_inplace(target: Tensor, result: Tensor) -> Tensor:
    """Write `result` into `target` and give target result's place in the graph; returns target."""
    if result.shape != target.shape:
        raise RuntimeError(f"output with shape {tuple(target.shape)} doesn't match the broadcast shape "
                           f"{tuple(result.shape)}")
    if result.dtype is not target.dtype:
        if result.dtype.category_rank > target.dtype.category_rank:
            raise RuntimeError(f"result type {result.dtype} can't be cast to the desired output type "
                               f"{target.dtype}")
        result = result.to(target.dtype)
    record = autograd.is_grad_enabled() and (target.requires_grad or result.requires_grad)
    if record:
        if target.grad_fn is None and target.requires_grad:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation "
                               f"(tensor of shape {tuple(target.shape)}); wrap it in tinyml.no_grad()")
        if target._base is not None:
            raise RuntimeError("in-place operation on a view while recording gradients is not supported by "
                               f"tinyml (view of shape {tuple(target.shape)}); write through the base tensor "
                               f"with "
                               "indexing (base[idx] = value) or use the out-of-place op")
        if result.grad_fn is not None:
            _snapshot_saved(result.grad_fn, target)
    run("copy_", target, result)
    target._version[0] += 1
    if record:
        if result.requires_grad:
            target.grad_fn, target._output_nr = result.grad_fn, result._output_nr
        else:
            node = Context(_Overwritten)
            target.grad_fn, target._output_nr = node, 0
        target.requires_grad = True
    return target


def add_(self: Tensor, other, *, alpha=1) -> Tensor:
    return apply_inplace(self, elementwise.add(self, other, alpha=alpha))


def sub_(self: Tensor, other, *, alpha=1) -> Tensor:
    return apply_inplace(self, elementwise.sub(self, other, alpha=alpha))


def mul_(self: Tensor, other) -> Tensor:
    return apply_inplace(self, elementwise.mul(self, other))


def div_(self: Tensor, other, *, rounding_mode=None) -> Tensor:
    return apply_inplace(self, elementwise.div(self, other, rounding_mode=rounding_mode))


def pow_(self: Tensor, exponent) -> Tensor:
    return apply_inplace(self, elementwise.pow(self, exponent))


def neg_(self: Tensor) -> Tensor:
    return apply_inplace(self, unary.neg(self))


def exp_(self: Tensor) -> Tensor:
    return apply_inplace(self, unary.exp(self))


def sqrt_(self: Tensor) -> Tensor:
    return apply_inplace(self, unary.sqrt(self))


def fill_(self: Tensor, value) -> Tensor:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with "
                               f"{value.ndim} dimensions (shape {tuple(value.shape)})")
        return apply_inplace(self, value.reshape(()).expand(self.shape))
    return apply_inplace(self, creation.full(self.shape, value, dtype=self.dtype, device=self.device))


def zero_(self: Tensor) -> Tensor:
    return fill_(self, 0)


def copy_(self: Tensor, src: Tensor, non_blocking: bool = False) -> Tensor:
    """Copy src's values into self, broadcasting src to self's shape and converting dtype/device."""
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'src' must be a Tensor, not {type(src).__name__}")
    if src.device != self.device:
        src = src.to(self.device)
    if src.shape != self.shape:
        src = expand(src, broadcast_shapes(self.shape, src.shape)) if src.ndim <= self.ndim else src
        if src.shape != self.shape:
            raise RuntimeError(f"copy_: the source of shape {tuple(src.shape)} is not broadcastable to the "
                               f"destination of shape {tuple(self.shape)}")
    if src.dtype is not self.dtype:
        src = src.to(self.dtype)  # copy_ converts any dtype, unlike arithmetic in-place ops
    return apply_inplace(self, src)


def masked_fill_(self: Tensor, mask: Tensor, value) -> Tensor:
    return apply_inplace(self, pointwise.masked_fill(self, mask, value))


def clamp_(self: Tensor, min=None, max=None) -> Tensor:
    return apply_inplace(self, pointwise.clamp(self, min, max))


clip_ = clamp_


def uniform_(self: Tensor, a: float = 0.0, b: float = 1.0, *, generator=None) -> Tensor:
    r = creation.rand(self.shape, dtype=self.dtype, device=self.device, generator=generator)
    return apply_inplace(self, r * (b - a) + a)


def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
    r = creation.randn(self.shape, dtype=self.dtype, device=self.device, generator=generator)
    return apply_inplace(self, r * std + mean)


def bernoulli_(self: Tensor, p: float = 0.5, *, generator=None) -> Tensor:
    r = creation.rand(self.shape, device=self.device, generator=generator)
    return apply_inplace(self, (r < p).to(self.dtype))


def index_add_(self: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    return apply_inplace(self, scatter.index_add(self, dim, index, source, alpha=alpha))


def scatter_(self: Tensor, dim: int, index: Tensor, src, *, reduce=None) -> Tensor:
    return apply_inplace(self, scatter.scatter(self, dim, index, src, reduce=reduce) if reduce else
                         scatter.scatter(self, dim, index, src))


def scatter_add_(self: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    return apply_inplace(self, scatter.scatter_add(self, dim, index, src))


