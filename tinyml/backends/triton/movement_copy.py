"""Triton kernels: movement ops that copy, for the cuda device. Most are built on copy_
(creation.py: any strides, broadcast by stride 0) into views of the result:

    repeat             x viewed with a size-1 dim before each dim, expanded to the repeats, copied
    repeat_interleave  (counts): each index repeated its count; the counts go to the host once to
                       size the result (a sync), then a searchsorted-style kernel fills it
    cat                one copy_ per input into its slice of the result
    flip               a copy from a view with negative strides
    roll               per dim two copies (the wrapped and the unwrapped part)
    pad_constant       a fill, then x copied into the interior view
    tril / triu        one masked strided kernel over the last two dims
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_movement.py -k cuda
"""
from __future__ import annotations

import math

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray, from_host
from ._strided import BLOCK, grid, strided_offsets
from ._view import expand, view
from .creation import arange, clone, contiguous, copy_, full, to_host
from .scatter import index_select
from .slicing import slice_view

__all__ = ["cat", "flip", "pad_constant", "repeat", "repeat_interleave", "roll", "tril", "triu"]


def repeat(x: CudaArray, repeats) -> CudaArray:
    """np.tile: out viewed as (r_0, s_0, r_1, s_1, ...) is x broadcast along the r_i dims."""
    repeats = tuple(int(r) for r in repeats)
    xs = (1,) * (len(repeats) - x.ndim) + x.shape
    x = view(contiguous(x), xs) if x.ndim != len(repeats) else x
    out = CudaArray.empty(tuple(r * s for r, s in zip(repeats, xs)), x.dtype)
    if out.numel():
        st = x.element_strides()
        src = x.as_strided(tuple(v for r, s in zip(repeats, xs) for v in (r, s)),
                           tuple(v for s in st for v in (0, s)))
        copy_(view(out, src.shape), src)
    return out


@triton.jit
def _interleave_kernel(values, ends, out, n_out, n_in, LOG2: tl.constexpr, BLOCK: tl.constexpr):
    """out[j] = values[k] for the k with ends[k-1] <= j < ends[k] (binary search over ends)."""
    j = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = j < n_out
    lo = tl.zeros((BLOCK,), tl.int64)
    hi = tl.zeros((BLOCK,), tl.int64) + n_in
    for _ in tl.static_range(LOG2):  # lo = the first k with ends[k] > j
        active = lo < hi
        mid = (lo + hi) // 2
        e = tl.load(ends + mid, mask=m & active, other=0)
        lo = tl.where(active & (e <= j), mid + 1, lo)
        hi = tl.where(active & (e > j), mid, hi)
    tl.store(out + j, tl.load(values + lo, mask=m), mask=m)


def repeat_interleave(x: CudaArray, repeats, dim) -> CudaArray:
    """Each slice of x along dim repeated `repeats` times (an int, or a device array of counts)."""
    if isinstance(repeats, CudaArray):
        counts = to_host(repeats).astype(np.int64).reshape(-1)  # sizes the result: a host sync
        if x.ndim != 1 or dim != 0:  # the 1-D case below on the slice numbers, then a gather
            picks = repeat_interleave(arange(0, x.shape[dim], 1, np.int64), repeats, 0)
            return index_select(x, dim, picks)
        ends = np.cumsum(counts)
        n_out = int(ends[-1]) if len(ends) else 0
        out = CudaArray.empty((n_out,), x.dtype)
        if n_out:
            n_in = len(counts)
            _interleave_kernel[grid(n_out)](contiguous(x), from_host(ends), out, n_out, n_in,
                                            LOG2=max(1, math.ceil(math.log2(n_in + 1))), BLOCK=BLOCK)
        return out
    r = int(repeats)
    if x.ndim == 0:
        x = view(contiguous(x), (1,))
    shape = x.shape
    src = expand(view(contiguous(x), shape[:dim + 1] + (1,) + shape[dim + 1:]),
                 shape[:dim + 1] + (r,) + shape[dim + 1:])
    out = CudaArray.empty(src.shape, x.dtype)
    if out.numel():
        copy_(out, src)
    return view(out, shape[:dim] + (shape[dim] * r,) + shape[dim + 1:])


def cat(xs, dim) -> CudaArray:
    """Concatenation along dim of arrays of one dtype and equal sizes elsewhere."""
    shape = list(xs[0].shape)
    shape[dim] = sum(x.shape[dim] for x in xs)
    out = CudaArray.empty(tuple(shape), xs[0].dtype)
    start = 0
    for x in xs:
        n = x.shape[dim]
        if n and x.numel():
            copy_(slice_view(out, (slice(None),) * dim + (slice(start, start + n, 1),)), x)
        start += n
    return out


def flip(x: CudaArray, dims) -> CudaArray:
    """y = x reversed along dims: a copy from a negative-stride view."""
    st = list(x.element_strides())
    offset = x.offset
    for d in dims:
        if x.shape[d] > 1:
            offset += (x.shape[d] - 1) * st[d]
            st[d] = -st[d]
    out = CudaArray.empty(x.shape, x.dtype)
    if out.numel():
        copy_(out, x.as_strided(x.shape, tuple(st), offset))
    return out


def _roll_dim(x: CudaArray, shift: int, dim: int) -> CudaArray:
    """y[..., (i + s) mod n, ...] = x[..., i, ...] along one dim."""
    n = x.shape[dim]
    out = CudaArray.empty(x.shape, x.dtype)
    s = shift % n if n else 0
    pre = (slice(None),) * dim
    if s == 0:
        return copy_(out, x)
    copy_(slice_view(out, pre + (slice(s, n, 1),)), slice_view(x, pre + (slice(0, n - s, 1),)))
    copy_(slice_view(out, pre + (slice(0, s, 1),)), slice_view(x, pre + (slice(n - s, n, 1),)))
    return out


def roll(x: CudaArray, shifts, dims) -> CudaArray:
    """Roll by each (shift, dim) pair; dims None (or empty) rolls the flattened array."""
    if dims is None or (isinstance(dims, (tuple, list)) and len(dims) == 0):
        flat = view(contiguous(x), (x.numel(),))
        s = shifts[0] if isinstance(shifts, (tuple, list)) else shifts
        return view(_roll_dim(flat, int(s), 0), x.shape)
    shifts = shifts if isinstance(shifts, (tuple, list)) else (shifts,)
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    out = x
    for s, d in zip(shifts, dims):
        out = _roll_dim(out, int(s), int(d))
    return out if out is not x else clone(x)


@triton.jit
def _tri_kernel(a, out, n, s1, s2, s3, a0, a1, a2, a3, diagonal, UPPER: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    col = i % s3
    row = (i // s3) % s2
    x = tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m)
    if UPPER:
        keep = col - row >= diagonal
    else:
        keep = col - row <= diagonal
    tl.store(out + i, tl.where(keep, x, tl.zeros_like(x)), mask=m)


def _tri(x: CudaArray, diagonal: int, upper: bool) -> CudaArray:
    out = CudaArray.empty(x.shape, x.dtype)
    if not out.numel():
        return out
    # rows and columns stay separate dims (no collapse): up to 4 dims go as they are, more are
    # merged into one leading dim of a contiguous copy
    if x.ndim > 4:
        x = view(contiguous(x), (math.prod(x.shape[:-2]),) + x.shape[-2:])
    shape4 = (1,) * (4 - x.ndim) + x.shape
    st4 = (0,) * (4 - x.ndim) + x.element_strides()
    n = math.prod(shape4)
    _tri_kernel[grid(n)](x, out, n, shape4[1], shape4[2], shape4[3], *st4, int(diagonal), UPPER=upper,
                         BLOCK=BLOCK)
    return out


def tril(x: CudaArray, diagonal) -> CudaArray:
    """x with the entries above the diagonal-th diagonal of the last two dims set to 0."""
    return _tri(x, diagonal, False)


def triu(x: CudaArray, diagonal) -> CudaArray:
    """x with the entries below the diagonal-th diagonal of the last two dims set to 0."""
    return _tri(x, diagonal, True)


def pad_constant(x: CudaArray, pads, value) -> CudaArray:
    """x padded with value; pads = ((before, after), ...) non-negative, one pair per dim."""
    pads = [tuple(int(v) for v in p) for p in pads]
    shape = tuple(s + b + a for s, (b, a) in zip(x.shape, pads))
    out = full(shape, value, x.dtype)
    if x.numel():
        copy_(slice_view(out, tuple(slice(b, b + s, 1) for s, (b, _) in zip(x.shape, pads))), x)
    return out
