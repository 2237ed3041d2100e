"""Searching and counting: searchsorted, bucketize, unique, unique_consecutive, bincount, histc.

None of them is differentiable (as in PyTorch: integer results, or counts). Kernels
(backends/*/search.py): searchsorted (a binary search per value), bincount and histc (counting).
unique and unique_consecutive are built from other ops on any device:

    s, perm = sort(flat)                   (stable; unique_consecutive skips the sort)
    starts  = [True, s[1:] != s[:-1]]      the first element of each run (NaN != NaN: every NaN
                                           is its own value, as in PyTorch)
    values  = s[starts];  group = cumsum(starts) - 1
    inverse[perm] = group;  counts = differences of the run starts
unique(dim=d) sorts the slices along d lexicographically: one stable sort per column, last
column first (a radix sort over columns), then compares neighbouring slices.
"""
from __future__ import annotations

import math

from .. import dtypes as _dt
from ..autograd import no_grad
from ..backends import run
from ..tensor import Tensor
from ._reduce_dims import wrap_dim
from .creation import arange, full, tensor, zeros
from .cumulative import cumsum
from .indexing import nonzero
from .movement_copy import cat
from .scatter import scatter
from .sort import sort

__all__ = ["bincount", "bucketize", "histc", "searchsorted", "unique", "unique_consecutive"]


def _as_values(input, like: Tensor, name: str) -> Tensor:
    if isinstance(input, Tensor):
        return input
    if isinstance(input, (bool, int, float)):
        return tensor(input, device=like.device)
    raise TypeError(f"{name}(): expected a Tensor or a number for the values, got {type(input).__name__}")


def searchsorted(sorted_sequence: Tensor, input, *, out_int32: bool = False, right: bool = False,
                 side: str | None = None, sorter: Tensor | None = None) -> Tensor:
    """Indices where `input`'s values would be inserted into the last dim of `sorted_sequence` to
    keep it sorted: the first i with seq[i] >= v (or > v with right=True / side='right').
    sorted_sequence is 1-D (shared) or has input's leading dims; sorter: indices that sort it."""
    if not isinstance(sorted_sequence, Tensor):
        raise TypeError("searchsorted(): sorted_sequence must be a Tensor, not "
                        f"{type(sorted_sequence).__name__}")
    values = _as_values(input, sorted_sequence, "searchsorted")
    if side not in (None, "left", "right"):
        raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but got {side!r}")
    if side is not None and (side == "right") != bool(right) and right:
        raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, got side of "
                           f"{side} while right was {right}")
    right = bool(right) or side == "right"
    seq = sorted_sequence
    if seq.ndim == 0:
        raise RuntimeError("torch.searchsorted(): boundaries tensor should have at least 1 dimension, got a "
                           "0-d tensor")
    if seq.ndim > 1 and (values.ndim != seq.ndim or tuple(values.shape[:-1]) != tuple(seq.shape[:-1])):
        raise RuntimeError("torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 "
                           "dimensions of boundaries tensor and input value tensor must match, but we got "
                           f"boundaries tensor {list(seq.shape)} and input value tensor {list(values.shape)}")
    if sorter is not None:
        if not isinstance(sorter, Tensor) or sorter.dtype is not _dt.int64 or sorter.shape != seq.shape:
            got = (f"{sorter.dtype} {list(sorter.shape)}" if isinstance(sorter, Tensor)
                   else type(sorter).__name__)
            raise RuntimeError("torch.searchsorted(): sorter must be an int64 tensor of the boundaries' "
                               f"shape {list(seq.shape)}, got {got}")
        seq = seq.gather(-1, sorter)
    common = _dt.promote_types(seq.dtype, values.dtype)
    n = seq.shape[-1]
    with no_grad():
        seq2 = seq.to(common).reshape(math.prod(seq.shape[:-1]), n).contiguous()
        rows, m = (seq2.shape[0], values.shape[-1]) if seq.ndim > 1 else (1, values.numel())
        vals2 = values.to(common).reshape(rows, m).contiguous()
        out = run("searchsorted", seq2, vals2, right).reshape(values.shape)
    return out.to(_dt.int32) if out_int32 else out


def bucketize(input, boundaries: Tensor, *, out_int32: bool = False, right: bool = False) -> Tensor:
    """The bucket of each value among 1-D `boundaries`: i with boundaries[i-1] < v <= boundaries[i]
    (right=True: boundaries[i-1] <= v < boundaries[i]); searchsorted(boundaries, input, right)."""
    if not isinstance(boundaries, Tensor) or boundaries.ndim != 1:
        got = list(boundaries.shape) if isinstance(boundaries, Tensor) else type(boundaries).__name__
        raise RuntimeError(f"bucketize(): boundaries tensor must be 1 dimension, but got {got}")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


def _runs(s: Tensor, return_inverse: bool, return_counts: bool, perm: Tensor | None, shape: tuple):
    """Values, inverse and counts of the runs of equal neighbours in the 1-D s (see the module doc)."""
    n = s.shape[0]
    if n == 0:
        empty = zeros(0, dtype=_dt.int64, device=s.device)
        return [s] + [empty.reshape(shape)] * return_inverse + [empty] * return_counts
    starts = cat([full((1,), True, device=s.device), s[1:] != s[:-1]])
    values = s[starts]
    out = [values]
    if return_inverse:
        group = cumsum(starts.to(_dt.int64), 0) - 1
        if perm is not None:
            group = scatter(zeros(n, dtype=_dt.int64, device=s.device), 0, perm, group)
        out.append(group.reshape(shape))
    if return_counts:
        first = nonzero(starts).reshape(-1)
        ends = cat([first[1:], full((1,), n, dtype=_dt.int64, device=s.device)])
        out.append(ends - first)
    return out


def _unique_dim(input: Tensor, dim: int, consecutive: bool, return_inverse: bool, return_counts: bool):
    d = wrap_dim(dim, input.ndim, input.shape, "unique")
    x = input.movedim(d, 0)
    size = x.shape[0]
    flat = x.reshape(size, -1)
    perm = arange(size, device=input.device)
    if not consecutive:
        for c in reversed(range(flat.shape[1])):  # stable sorts, last column first: lexicographic order
            perm = perm[sort(flat[perm, c]).indices]
    rows = flat[perm]
    if size == 0:
        starts = zeros(0, dtype=_dt.bool_, device=input.device)
    else:
        differ = (rows[1:] != rows[:-1]).any(1) if rows.shape[1] else zeros(size - 1, dtype=_dt.bool_)
        starts = cat([full((1,), True, device=input.device), differ])
    values = x[perm][starts].movedim(0, d)
    out = [values]
    if return_inverse:
        group = cumsum(starts.to(_dt.int64), 0) - 1
        out.append(scatter(zeros(size, dtype=_dt.int64, device=input.device), 0, perm, group))
    if return_counts:
        first = nonzero(starts).reshape(-1)
        out.append(cat([first[1:], full((1,), size, dtype=_dt.int64, device=input.device)]) - first)
    return out


def _unique(name, input, consecutive, return_inverse, return_counts, dim):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be a Tensor, not {type(input).__name__}")
    with no_grad():
        if dim is not None:
            out = _unique_dim(input.detach(), dim, consecutive, return_inverse, return_counts)
        else:
            flat = input.detach().reshape(-1)
            s, perm = (flat, None) if consecutive else sort(flat)
            out = _runs(s, return_inverse, return_counts, perm, tuple(input.shape))
    if not (return_inverse or return_counts):
        return out[0] if isinstance(out, list) else out
    return tuple(out)


def unique(input: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,
           dim: int | None = None):
    """The distinct values of input, ascending (always sorted, as PyTorch's cpu and cuda kernels
    are), plus optionally the inverse (each element's position in them, input's shape) and the
    counts. With dim: the distinct slices along dim, in lexicographic order."""
    return _unique("unique", input, False, return_inverse, return_counts, dim)


def unique_consecutive(input: Tensor, return_inverse: bool = False, return_counts: bool = False,
                       dim: int | None = None):
    """Collapse each run of equal consecutive elements (or slices along dim) to one."""
    return _unique("unique_consecutive", input, True, return_inverse, return_counts, dim)


def bincount(input: Tensor, weights: Tensor | None = None, minlength: int = 0) -> Tensor:
    """counts[v] = the number of times v occurs in the 1-D non-negative integer input (or the sum
    of weights there), for v up to max(max(input) + 1, minlength) - 1."""
    if not isinstance(input, Tensor) or input.ndim != 1 or input.dtype.is_floating_point \
            or input.dtype is _dt.bool_:
        got = (f"{input.dtype} of shape {list(input.shape)}" if isinstance(input, Tensor)
               else type(input).__name__)
        raise RuntimeError(f"bincount only supports 1-d non-negative integral inputs, got {got}")
    if minlength < 0:
        raise RuntimeError(f"bincount: minlength should be >= 0, got {minlength}")
    if weights is not None and (not isinstance(weights, Tensor)
                                or tuple(weights.shape) != tuple(input.shape)):
        got = list(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise RuntimeError(f"bincount: weights should be 1-d and have the same length as input "
                           f"({input.shape[0]}), got {got}")
    length = int(minlength)
    if input.numel():
        low, high = int(input.min().item()), int(input.max().item())
        if low < 0:
            raise RuntimeError("bincount only supports 1-d non-negative integral inputs, got a value of "
                               f"{low}")
        length = max(length, high + 1)
    with no_grad():
        return run("bincount", input, None if weights is None else weights.detach(), length)


def histc(input: Tensor, bins: int = 100, min: float = 0, max: float = 0) -> Tensor:
    """Counts of input's elements in `bins` equal-width bins over [min, max], in input's dtype;
    min == max uses the data's range (widened by 1 each way if that is one value). NaN and values
    outside [min, max] are ignored; the last bin includes max."""
    if not isinstance(input, Tensor):
        raise TypeError(f"histc(): argument 'input' must be a Tensor, not {type(input).__name__}")
    if input.dtype not in (_dt.float32, _dt.float64):
        raise NotImplementedError(f"histc(): expected a float32 or float64 input, got {input.dtype}")
    bins = int(bins)
    if bins <= 0:
        raise RuntimeError(f"torch.histc(): bins must be > 0, but got {bins}")
    low, high = float(min), float(max)
    if low > high:
        raise RuntimeError(f"torch.histc: max must be larger than min (got min={min}, max={max})")
    if low == high and input.numel():  # the data's range (NaN if it holds one: refused below, as torch)
        with no_grad():
            low, high = float(input.detach().min().item()), float(input.detach().max().item())
    if low == high:
        low, high = low - 1, high + 1
    if not (math.isfinite(low) and math.isfinite(high)):
        raise RuntimeError(f"torch.histc: range of [{low}, {high}] is not finite")
    with no_grad():
        return run("histc", input.detach(), bins, low, high)
