"""First-day ops that are compositions of other tinyml ops (each gradient is that of the ops it is
made of), as in torch: nansum, nanmean, diff, tensordot, tile, numel, hardsigmoid, hardswish,
cummax, cummin.

    nansum(x) = sum(where(isnan(x), 0, x));   nanmean(x) = nansum(x) / count(not isnan(x))
    diff(x, n, dim) = x[1:] - x[:-1] along dim, n times (prepend / append joined first)
    tensordot(a, b, dims) = sum over the paired dims of a[..., k] b[k, ...]  (one matmul)
    tile(x, reps) = repeat(x, reps) with reps left-padded by ones to x.dim()
    hardsigmoid(x) = relu6(x + 3) / 6;   hardswish(x) = x * hardsigmoid(x)
    cummax(x, dim).values[i] = max_{j <= i} x[j], indices the last j reaching it; a NaN is the
    maximum from where it appears (torch's rule); the values are gather(x, dim, indices), so the
    gradient flows to the index picked, as torch's

hardswish's gradient at exactly x = -3 and x = 3 is that of the composition (0 and 1); torch's
hand-written backward gives -0.5 and 1.5 there. Elsewhere they agree.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import dtypes as _dt
from ..tensor import Tensor, _wrap_dim
from .activation import hardtanh
from .creation import tensor
from .matmul import matmul
from .movement import permute, reshape
from .movement_copy import cat, repeat
from .pointwise import where
from .reduce import sum as _sum
from .scatter import gather
from .unary import isnan

__all__ = ["cummax", "cummin", "diff", "hardsigmoid", "hardswish", "nanmean", "nansum", "numel", "tensordot",
           "tile"]

cummax_result = namedtuple("cummax", ["values", "indices"])
cummin_result = namedtuple("cummin", ["values", "indices"])


def _floating(name: str, input: Tensor) -> None:
    if not input.is_floating_point():
        raise TypeError(f"{name}: expected a floating point tensor, got {input.dtype}")


def nansum(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """The sum treating NaN as zero (torch.nansum)."""
    _floating("nansum", input)
    return _sum(where(isnan(input), 0.0, input), dim, keepdim, dtype=dtype)


def nanmean(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """The mean over the entries that are not NaN (torch.nanmean); all-NaN slices give NaN (0 / 0).

    The gradient of an all-NaN slice is 0 here, NaN in torch (its backward multiplies 1/0 by the mask)."""
    _floating("nanmean", input)
    kept = (~isnan(input)).to(input.dtype if dtype is None else dtype)
    return nansum(input, dim, keepdim, dtype=dtype) / _sum(kept, dim, keepdim)


def diff(input: Tensor, n: int = 1, dim: int = -1, prepend: Tensor | None = None,
         append: Tensor | None = None) -> Tensor:
    """The n-th forward difference along dim (torch.diff); n = 0 returns the input itself."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"diff: n must be a non-negative int, got {n!r}")
    if input.dim() == 0:
        raise ValueError("diff: expected a tensor with at least one dimension, got a 0-d tensor")
    dim = _wrap_dim(dim, input.dim())
    if n == 0:
        return input  # torch ignores prepend and append when n = 0
    parts = [t for t in (prepend, input, append) if t is not None]
    x = cat(parts, dim) if len(parts) > 1 else input
    for _ in range(n):
        length = x.shape[dim]
        if length == 0:
            break
        x = x.narrow(dim, 1, length - 1) - x.narrow(dim, 0, length - 1)
    return x


def _dims_pair(a: Tensor, b: Tensor, dims) -> tuple[list[int], list[int]]:
    if isinstance(dims, int):
        if dims < 0 or dims > min(a.dim(), b.dim()):
            raise ValueError(f"tensordot: dims={dims} must be in [0, {min(a.dim(), b.dim())}] for shapes "
                             f"{tuple(a.shape)} and {tuple(b.shape)}")
        return list(range(a.dim() - dims, a.dim())), list(range(dims))
    dims_a, dims_b = dims
    dims_a = [dims_a] if isinstance(dims_a, int) else list(dims_a)
    dims_b = [dims_b] if isinstance(dims_b, int) else list(dims_b)
    if len(dims_a) != len(dims_b):
        raise ValueError(f"tensordot: dims {dims_a} and {dims_b} pair a different number of dims")
    dims_a = [_wrap_dim(d, a.dim()) for d in dims_a]
    dims_b = [_wrap_dim(d, b.dim()) for d in dims_b]
    for da, db in zip(dims_a, dims_b):
        if a.shape[da] != b.shape[db]:
            raise ValueError(f"tensordot: dim {da} of a (size {a.shape[da]}) and dim {db} of b (size "
                             f"{b.shape[db]}) are paired but differ; shapes {tuple(a.shape)}, "
                             f"{tuple(b.shape)}")
    return dims_a, dims_b


def tensordot(a: Tensor, b: Tensor, dims=2) -> Tensor:
    """Contract a's dims_a with b's dims_b (torch.tensordot): the free dims of a, then those of b."""
    dims_a, dims_b = _dims_pair(a, b, dims)
    free_a = [d for d in range(a.dim()) if d not in dims_a]
    free_b = [d for d in range(b.dim()) if d not in dims_b]
    k = int(np.prod([a.shape[d] for d in dims_a], dtype=np.int64))
    out_shape = tuple(a.shape[d] for d in free_a) + tuple(b.shape[d] for d in free_b)
    left = reshape(permute(a, free_a + dims_a), (-1, k))
    right = reshape(permute(b, dims_b + free_b), (k, -1))
    return reshape(matmul(left, right), out_shape)


def tile(input: Tensor, dims) -> Tensor:
    """Repeat input along each dim (torch.tile): dims shorter than input.dim() are left-padded by ones."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    dims = (1,) * (input.dim() - len(dims)) + dims
    return repeat(input, *dims)


def numel(input: Tensor) -> int:
    """The number of elements (torch.numel)."""
    return input.numel()


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6 (torch.nn.functional.hardsigmoid)."""
    out = hardtanh(input + 3.0, 0.0, 6.0) / 6.0
    return input.copy_(out) if inplace else out


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6 (torch.nn.functional.hardswish; gradient at +-3: module docstring)."""
    out = input * hardsigmoid(input)
    return input.copy_(out) if inplace else out


def _cumulative_index(name: str, input: Tensor, dim: int, take_new) -> Tensor:
    dim = _wrap_dim(dim, max(input.dim(), 1))
    x = np.moveaxis(input.detach().cpu().numpy().reshape(input.shape or (1,)), dim, 0)
    index = np.zeros(x.shape, dtype=np.int64)
    if x.shape[0]:
        best = x[0].copy()
        for j in range(1, x.shape[0]):
            new = take_new(x[j], best)
            best = np.where(new, x[j], best)
            index[j] = np.where(new, j, index[j - 1])
    index = np.moveaxis(index, 0, dim).reshape(input.shape)
    return tensor(np.ascontiguousarray(index), dtype=_dt.int64, device=input.device)


def _cummax_new(value, best):
    with np.errstate(invalid="ignore"):
        return np.isnan(value) | (~np.isnan(best) & (value >= best))


def _cummin_new(value, best):
    with np.errstate(invalid="ignore"):
        return np.isnan(value) | (~np.isnan(best) & (value <= best))


def cummax(input: Tensor, dim: int):
    """(values, indices): the running maximum along dim and where it was taken (torch.cummax)."""
    indices = _cumulative_index("cummax", input, dim, _cummax_new)
    values = gather(input, dim, indices) if input.dim() else input.clone()
    return cummax_result(values, indices)


def cummin(input: Tensor, dim: int):
    """(values, indices): the running minimum along dim and where it was taken (torch.cummin)."""
    indices = _cumulative_index("cummin", input, dim, _cummin_new)
    values = gather(input, dim, indices) if input.dim() else input.clone()
    return cummin_result(values, indices)
