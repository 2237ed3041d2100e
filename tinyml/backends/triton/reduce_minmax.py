"""Triton kernels: max/min-style reductions, their indices and gradients, for the cuda device.

    amax, amin                 one pass per row; NaN propagates (a NaN flag beside the extremum)
    max_dim, min_dim,          one pass per row keeping (best value, first index of it, first NaN
    argmax, argmin             index): the first extremal index on ties, the first NaN if any
    amax_backward              g / #ties where x == y (NaN equal to a NaN result): a counting pass,
                               then a writing pass, in row layout (_rows.py)
    value_selecting_backward   zeros of the input's shape with g stored at the selected index
                               (a scatter along dim; indices are distinct per row, so no atomics)
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_reduce_minmax.py -k cuda
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._rows import MAX_BLOCK, block_for, finish, float_acc, from_rows, load_up, per_row, rows_of, split_plan
from ._strided import upcast
from ._view import view
from .creation import clone, contiguous, full

__all__ = ["amax", "amax_backward", "amin", "argmax", "argmin", "max_dim", "min_dim",
           "value_selecting_backward"]


@triton.jit
def _extreme_rows(x, values, indices, R, S, CH, IS_MAX: tl.constexpr, WANT_VALUES: tl.constexpr,
                  WANT_INDEX: tl.constexpr, BLOCK: tl.constexpr):
    """Per row (or chunk of a row, see _rows.split_plan): the first index of the max (min), or of
    the first NaN; its value."""
    pid = tl.program_id(0).to(tl.int64)
    row, lo = pid // S, (pid % S) * CH
    base = x + row * R
    first = upcast(tl.load(base + lo))
    best = first
    best_idx = tl.zeros((), tl.int64) + lo
    nan_idx = tl.zeros((), tl.int64) + R
    for start in range(0, CH, BLOCK):
        lane = start + tl.arange(0, BLOCK)
        offs = lo + lane
        m = (offs < R) & (lane < CH)
        v = load_up(base + offs, m, 0)
        is_nan = v != v  # noqa: PLR0124 (x != x: NaN test)
        nan_idx = tl.minimum(nan_idx, tl.min(tl.where(m & is_nan, offs, R), 0).to(tl.int64))
        v = tl.where(m & (~is_nan), v, first)  # padding and NaN never beat the running extremum
        if IS_MAX:
            ext = tl.max(v, 0)
        else:
            ext = tl.min(v, 0)
        ext_idx = tl.min(tl.where(m & (v == ext) & (~is_nan), offs, R), 0).to(tl.int64)
        if IS_MAX:
            better = ext > best
        else:
            better = ext < best
        # the chunk's extremum may come only from `first` substitutions (ext_idx == R): skip it then
        take = better & (ext_idx < R)
        best_idx = tl.where(take, ext_idx, best_idx)
        best = tl.where(take, ext, best)
    idx = tl.where(nan_idx < R, nan_idx, best_idx)
    if WANT_INDEX:
        tl.store(indices + pid, idx)
    if WANT_VALUES:
        tl.store(values + pid, tl.load(base + idx))


@triton.jit
def _amax_backward_rows(x, y, g, out, R, ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * R
    yr = upcast(tl.load(y + row))
    gr = upcast(tl.load(g + row)).to(ACC)
    count = tl.zeros((BLOCK,), ACC)
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        m = offs < R
        v = load_up(x + base + offs, m, 0)
        hit = tl.where(yr != yr, v != v, v == yr)  # noqa: PLR0124 (x != x: NaN test)
        count += tl.where(m & hit, 1.0, 0.0).to(ACC)
    share = gr / tl.maximum(tl.sum(count, 0), 1.0)
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        m = offs < R
        v = load_up(x + base + offs, m, 0)
        hit = tl.where(yr != yr, v != v, v == yr)  # noqa: PLR0124 (x != x: NaN test)
        tl.store(out + base + offs, tl.where(hit, share, 0.0).to(out.dtype.element_ty), mask=m)


@triton.jit
def _put_rows(g, idx, out, n_rows, R, BLOCK: tl.constexpr):
    """out[row, idx[row]] = g[row] (out zeroed, (n_rows, R))."""
    r = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = r < n_rows
    i = tl.load(idx + r, mask=m, other=0)
    tl.store(out + r * R + i, tl.load(g + r, mask=m), mask=m)


def _extreme(x: CudaArray, dims: tuple, is_max: bool, want_values: bool, want_index: bool):
    rows, n_rows, R = rows_of(x, dims)
    values = CudaArray.empty((n_rows,), x.dtype)
    indices = CudaArray.empty((n_rows,), np.int64)
    if not (n_rows and R):
        return values, indices
    meta = {"IS_MAX": is_max, "WANT_VALUES": want_values, "WANT_INDEX": want_index}
    S, CH = split_plan(n_rows, R) if not want_index else (1, R)  # values combine; indices would need offsets
    if S == 1:
        _extreme_rows[(n_rows,)](rows, values, indices, R, 1, R, BLOCK=block_for(R), **meta)
        return values, indices
    partials = CudaArray.empty((n_rows * S,), x.dtype)
    _extreme_rows[(n_rows * S,)](rows, partials, indices, R, S, CH, BLOCK=MAX_BLOCK, **meta)
    _extreme_rows[(n_rows,)](partials, values, indices, S, 1, S, BLOCK=block_for(S), **meta)
    return values, indices


def amax(x: CudaArray, dims, keepdim) -> CudaArray:
    """max over dims."""
    dims = tuple(dims)
    return finish(_extreme(x, dims, True, True, False)[0], x.shape, dims, keepdim)


def amin(x: CudaArray, dims, keepdim) -> CudaArray:
    """min over dims."""
    dims = tuple(dims)
    return finish(_extreme(x, dims, False, True, False)[0], x.shape, dims, keepdim)


def _with_indices(x: CudaArray, dim: int, keepdim: bool, is_max: bool):
    if x.ndim == 0:
        return clone(x), full((), 0, np.int64)
    values, indices = _extreme(x, (dim,), is_max, True, True)
    return finish(values, x.shape, (dim,), keepdim), finish(indices, x.shape, (dim,), keepdim)


def max_dim(x: CudaArray, dim, keepdim):
    """(values, indices) of the max along one axis; the first maximal index on ties."""
    return _with_indices(x, dim, keepdim, True)


def min_dim(x: CudaArray, dim, keepdim):
    """(values, indices) of the min along one axis; the first minimal index on ties."""
    return _with_indices(x, dim, keepdim, False)


def _arg(x: CudaArray, dim, keepdim: bool, is_max: bool) -> CudaArray:
    if dim is None:
        flat = view(contiguous(x), (x.numel(),))
        idx = _extreme(flat, (0,), is_max, False, True)[1]
        return view(idx, (1,) * x.ndim if keepdim else ())
    if x.ndim == 0:
        return full((), 0, np.int64)
    return finish(_extreme(x, (dim,), is_max, False, True)[1], x.shape, (dim,), keepdim)


def argmax(x: CudaArray, dim, keepdim) -> CudaArray:
    """Index of the first max along dim (None: into the flattened input)."""
    return _arg(x, dim, keepdim, True)


def argmin(x: CudaArray, dim, keepdim) -> CudaArray:
    """Index of the first min along dim (None: into the flattened input)."""
    return _arg(x, dim, keepdim, False)


def amax_backward(x: CudaArray, y: CudaArray, g: CudaArray, dims) -> CudaArray:
    """g split evenly among the elements equal to the result, 0 elsewhere (y, g keepdim form)."""
    dims = tuple(dims)
    rows, n_rows, R = rows_of(x, dims)
    out = CudaArray.empty((n_rows, R), g.dtype)
    if n_rows and R:
        _amax_backward_rows[(n_rows,)](rows, per_row(y, x.shape, dims), per_row(g, x.shape, dims), out, R,
                                       ACC=float_acc(g.dtype), BLOCK=block_for(R))
    return from_rows(out, x.shape, dims)


def value_selecting_backward(g: CudaArray, indices: CudaArray, dim, in_shape) -> CudaArray:
    """Zeros of in_shape with g (keepdim form) put at `indices` along dim."""
    in_shape = tuple(in_shape)
    if len(in_shape) == 0:
        return contiguous(view(contiguous(g), ()))
    dims = (dim,)
    R = in_shape[dim]
    n_rows = int(np.prod(in_shape)) // max(R, 1)
    out = full((n_rows, R), 0, g.dtype)
    if n_rows and R:
        block = 256
        _put_rows[(triton.cdiv(n_rows, block),)](per_row(g, in_shape, dims), per_row(indices, in_shape, dims),
                                                 out, n_rows, R, BLOCK=block)
    return from_rows(out, in_shape, dims)
