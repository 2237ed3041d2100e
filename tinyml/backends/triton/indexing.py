"""Triton kernels: advanced indexing for the cuda device (index_select, index_add and one_hot, built
on these, are in scatter.py).

    index(x, indices, dims)        y = x[idx]: the index arrays (broadcast to shape B) become one
                                   element offset per index position, off[b] = sum_k idx_k[b] st_k;
                                   then y[b, r] = x[off[b] + rest_offset(r)] over the other dims
                                   (r strided, <= 4 dims after collapsing), laid out (B, rest) and
                                   moved to numpy's placement by a strided copy
    index_backward                 zeros, then atomic adds of g at the same offsets (float32
                                   accumulation for 16-bit floats)
    index_put_(x, ..., accumulate) stores (or atomic adds) into x in place, through x's strides
    nonzero(x)                     per-block counts, then positions from a block-local cumsum;
                                   the count sizes the result, so it goes to the host (a sync)
Index bounds are checked as the reference does (IndexError naming index, dim and size): one small
min/max reduction whose two numbers go to the host (a sync per index array).
Atomic adds in float32 make repeated indices accumulate in an unspecified order (as on PyTorch's GPU).
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_indexing.py -k cuda
"""
from __future__ import annotations

import math

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray, from_host
from ._rows import load_up
from ._strided import BLOCK, collapse, grid, launch_strided, pad4, strided_offsets
from ._view import expand, permute, view
from .creation import cast, contiguous, copy_, full, to_host
from .elementwise import add

__all__ = [
    "index",
    "index_backward",
    "index_put_",
    "nonzero",
]


@triton.jit
def _minmax_kernel(x, out, n, BLOCK: tl.constexpr):
    """out[0] = min, out[1] = max of a contiguous int64 array (one program)."""
    lo = tl.full((BLOCK,), 2**62, tl.int64)
    hi = tl.full((BLOCK,), -2**62, tl.int64)
    for start in range(0, n, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        v = tl.load(x + offs, mask=offs < n, other=0).to(tl.int64)
        lo = tl.minimum(lo, tl.where(offs < n, v, 2**62))
        hi = tl.maximum(hi, tl.where(offs < n, v, -2**62))
    tl.store(out, tl.min(lo, 0))
    tl.store(out + 1, tl.max(hi, 0))


def int_range(idx: CudaArray) -> tuple[int, int]:
    """(min, max) of an integer array, read back to the host."""
    flat = view(contiguous(idx), (idx.numel(),))
    out = CudaArray.empty((2,), np.int64)
    _minmax_kernel[(1,)](flat, out, flat.shape[0], BLOCK=1024)
    lo, hi = to_host(out)
    return int(lo), int(hi)


def check_bounds(idx: CudaArray, size: int, dim: int) -> None:
    if idx.numel() == 0:
        return
    lo, hi = int_range(idx)
    if lo < -size or hi >= size:
        raise IndexError(f"index {hi if hi >= size else lo} is out of bounds for dimension {dim} with size "
                         f"{size}")


@triton.jit
def _offset_kernel(idx, off, n, s1, s2, s3, a0, a1, a2, a3, size, stride, FIRST: tl.constexpr,
                   BLOCK: tl.constexpr):
    """off (+)= (idx wrapped into [0, size)) * stride, over the broadcast index shape."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    v = tl.load(idx + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m, other=0).to(tl.int64)
    v = tl.where(v < 0, v + size, v) * stride
    if not FIRST:
        v += tl.load(off + i, mask=m, other=0)
    tl.store(off + i, v, mask=m)


@triton.jit
def _index_kernel(x, off, val, n, n_rest, s1, s2, s3, r0, r1, r2, r3, MODE: tl.constexpr,
                  BLOCK: tl.constexpr):
    """Over (b, r) flat: MODE "get": val[i] = x[off[b] + rest(r)]; "put": x[...] = val[i];
    "add": x[...] += val[i] (atomic)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    b = i // n_rest
    r = i % n_rest
    p = tl.load(off + b, mask=m, other=0) + strided_offsets(r, s1, s2, s3, r0, r1, r2, r3)
    if MODE == "get":
        tl.store(val + i, tl.load(x + p, mask=m), mask=m)
    elif MODE == "put":
        tl.store(x + p, tl.load(val + i, mask=m).to(x.dtype.element_ty), mask=m)
    else:
        tl.atomic_add(x + p, load_up(val + i, m, 0).to(x.dtype.element_ty), mask=m)


def _broadcast_shape(shapes) -> tuple:
    return tuple(np.broadcast_shapes(*shapes))


def _offsets(x_shape, x_strides, indices, dims) -> tuple[CudaArray, tuple]:
    """(off, B): one int64 element offset per broadcast index position."""
    B = _broadcast_shape([i.shape for i in indices])
    off = CudaArray.empty(B, np.int64)
    if off.numel():
        for k, (idx, d) in enumerate(zip(indices, dims)):
            def launch(shape, strides, views, d=d, first=(k == 0)):
                cnt = math.prod(shape)
                _offset_kernel[grid(cnt)](views[0], views[1], cnt, shape[1], shape[2], shape[3], *strides[0],
                                          x_shape[d], x_strides[d], FIRST=first, BLOCK=BLOCK)

            launch_strided(launch, B, [expand(idx, B), off])
    return off, B


def _layout(x_ndim: int, B: tuple, dims) -> tuple[bool, int]:
    """(adjacent, first dim): numpy puts B in place of adjacent dims, else first."""
    dims = tuple(dims)
    return dims == tuple(range(dims[0], dims[0] + len(dims))), dims[0]


def _run(x: CudaArray, indices, dims, val: CudaArray | None, mode: str) -> CudaArray:
    """The core launch. For "get" returns (B, rest) contiguous; for put/add val is (B, rest) contiguous."""
    st = x.element_strides()
    off, B = _offsets(x.shape, st, indices, dims)
    rest = [d for d in range(x.ndim) if d not in dims]
    rshape, rstr = collapse(tuple(x.shape[d] for d in rest), [tuple(st[d] for d in rest)])
    if len(rshape) > 4:  # the other dims do not collapse to 4: work on a contiguous copy
        xc = contiguous(x)
        out = _run(xc, indices, dims, val, mode)
        if mode != "get":
            copy_(x, xc)
        return out
    n_rest = math.prod(x.shape[d] for d in rest)
    if mode == "get":
        val = CudaArray.empty(B + tuple(x.shape[d] for d in rest), x.dtype)
    n = math.prod(B) * n_rest
    if n:
        s4, (r4,) = pad4(rshape, rstr)
        _index_kernel[grid(n)](x, off, val, n, n_rest, s4[1], s4[2], s4[3], *r4, MODE=mode, BLOCK=BLOCK)
    return val


def _to_blocked(a: CudaArray, x_ndim: int, B: tuple, dims) -> CudaArray:
    """An array in numpy's placement (B in place of adjacent dims) as (B, rest) contiguous."""
    adjacent, d0 = _layout(x_ndim, B, dims)
    if adjacent and d0 > 0:
        nb = len(B)
        order = list(range(d0, d0 + nb)) + list(range(d0)) + list(range(d0 + nb, a.ndim))
        a = permute(a, order)
    return contiguous(a)


def _from_blocked(a: CudaArray, x_ndim: int, B: tuple, dims) -> CudaArray:
    adjacent, d0 = _layout(x_ndim, B, dims)
    if adjacent and d0 > 0:
        nb = len(B)
        order = list(range(nb, nb + d0)) + list(range(nb)) + list(range(nb + d0, a.ndim))
        return contiguous(permute(a, order))
    return a


def index(x: CudaArray, indices, dims) -> CudaArray:
    """x[idx] with int arrays at dims and whole slices elsewhere (a copy)."""
    dims = tuple(dims)
    for idx, d in zip(indices, dims):
        check_bounds(idx, x.shape[d], d)
    B = _broadcast_shape([i.shape for i in indices])
    return _from_blocked(_run(x, indices, dims, None, "get"), x.ndim, B, dims)


def _value_blocked(value, x: CudaArray, indices, dims, dtype) -> CudaArray:
    B = _broadcast_shape([i.shape for i in indices])
    rest = tuple(x.shape[d] for d in range(x.ndim) if d not in dims)
    adjacent, d0 = _layout(x.ndim, B, dims)
    target = (x.shape[:d0] + B + x.shape[dims[-1] + 1:]) if adjacent else B + rest
    if not isinstance(value, CudaArray):
        return full(B + rest, value, dtype)  # the kernel reads values contiguously
    if value.shape != target:
        value = expand(value, target)
    return _to_blocked(value, x.ndim, B, dims)


def _accumulator(dtype: np.dtype) -> np.dtype:
    """Atomics run in float32 for 16-bit floats (no bf16 atomics in the interpreter, few on GPUs)."""
    half = dtype.kind == "f" and dtype.itemsize == 2 or dtype.name == "bfloat16"
    return np.dtype(np.float32) if half else dtype


def index_backward(g: CudaArray, shape, indices, dims) -> CudaArray:
    """zeros(shape) with g scatter-added at idx."""
    dims = tuple(dims)
    acc = _accumulator(g.dtype)
    out = full(tuple(shape), 0, acc)
    B = _broadcast_shape([i.shape for i in indices])
    _run(out, indices, dims, _to_blocked(g, len(shape), B, dims), "add")
    return out if acc == g.dtype else cast(out, g.dtype)


def index_put_(x: CudaArray, indices, dims, value, accumulate) -> CudaArray:
    """x[idx] = value (+= with accumulate), in place; value an array of the indexed shape or a scalar."""
    dims = tuple(dims)
    if not dims:  # no advanced index (x[1, 0] = v arrives as the view x[1, 0]): a plain assignment
        if accumulate:
            value = value if isinstance(value, CudaArray) else full(x.shape, value, x.dtype)
            return copy_(x, add(x, value if value.shape == x.shape else expand(value, x.shape)))
        return copy_(x, value if isinstance(value, CudaArray) else full(x.shape, value, x.dtype))
    for idx, d in zip(indices, dims):
        check_bounds(idx, x.shape[d], d)
    if not accumulate:
        _run(x, indices, dims, _value_blocked(value, x, indices, dims, x.dtype), "put")
        return x
    acc = _accumulator(x.dtype)
    target = x if acc == x.dtype and x.is_contiguous() else cast(x, acc)
    _run(target, indices, dims, _value_blocked(value, x, indices, dims, acc), "add")
    if target is not x:
        copy_(x, target)
    return x


@triton.jit
def _count_kernel(x, counts, n, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    nz = tl.load(x + i, mask=i < n, other=0) != 0
    tl.store(counts + tl.program_id(0), tl.sum(nz.to(tl.int64), 0))


@triton.jit
def _nonzero_kernel(x, starts, sizes, out, n, NDIM: tl.constexpr, BLOCK: tl.constexpr):
    """Row k of out (k = the element's rank among the nonzeros) = its coordinates."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    nz = (tl.load(x + i, mask=i < n, other=0) != 0) & (i < n)
    k = tl.load(starts + tl.program_id(0)) + tl.cumsum(nz.to(tl.int64), 0) - 1
    rem = i
    for d in tl.static_range(NDIM - 1, -1, -1):
        size = tl.load(sizes + d)
        tl.store(out + k * NDIM + d, rem % size, mask=nz)
        rem = rem // size


def nonzero(x: CudaArray) -> CudaArray:
    """(n, ndim) int64 coordinates of the nonzero elements in row-major order (syncs for n)."""
    flat = view(contiguous(x), (x.numel(),))
    n = flat.shape[0]
    blocks = max(1, triton.cdiv(n, BLOCK))
    counts = CudaArray.empty((blocks,), np.int64)
    if n:
        _count_kernel[(blocks,)](flat, counts, n, BLOCK=BLOCK)
    host_counts = to_host(counts) if n else np.zeros(blocks, np.int64)
    total = int(host_counts.sum())
    out = CudaArray.empty((total, x.ndim), np.int64)
    if total and x.ndim:
        starts = from_host(np.concatenate([[0], np.cumsum(host_counts)[:-1]]).astype(np.int64))
        _nonzero_kernel[(blocks,)](flat, starts, from_host(np.array(x.shape, np.int64)), out, n, NDIM=x.ndim,
                                   BLOCK=BLOCK)
    return out
