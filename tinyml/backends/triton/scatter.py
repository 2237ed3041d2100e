"""Triton kernels: gather and scatter along one dim, index_select/index_add and one_hot, for the
cuda device.

    gather(x, dim, index)              y[p] = x[p with p_dim = index[p]]
    scatter(x, dim, index, src, reduce) y = x; y[p with p_dim = index[p]] = src[p] (reduce None),
                                       += (reduce "add", atomic), *= (reduce "multiply")
    scatter_add(x, dim, index, src)    scatter with "add"
    index_select(x, dim, index)        indexing.py's index with one 1-D index
    index_add(x, dim, index, src)      a clone of x, then indexing.py's index_put_ with accumulate
    one_hot(x, C)                      y[i, c] = x[i] == c (its own kernel)
gather/scatter: one kernel walks index's shape: x (or the result) viewed with index's shape, its strides and
stride 0 along dim gives each position's base offset, plus index[p] * stride_dim; so every
operand goes through the shared strided addressing (<= 4 dims after collapsing).
"multiply" has no atomic in Triton: one program applies the updates in order (slow, exact);
"add" accumulates in float32 for 16-bit floats. Bounds are checked on the host (a sync).
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_scatter.py -k cuda
"""
from __future__ import annotations

import math

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._rows import load_up
from ._strided import BLOCK, grid, launch_strided, strided_offsets, upcast
from ._view import expand
from .creation import cast, clone, contiguous, copy_, full
from .elementwise import mul
from .indexing import _accumulator, check_bounds, index, index_put_, int_range
from .slicing import slice_view

__all__ = ["gather", "index_add", "index_select", "one_hot", "scatter", "scatter_add"]


@triton.jit
def _gather_scatter_kernel(x, idx, val, n, s1, s2, s3, x0, x1, x2, x3, i0, i1, i2, i3, v0, v1, v2, v3, size,
                           stride, MODE: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    k = tl.load(idx + strided_offsets(i, s1, s2, s3, i0, i1, i2, i3), mask=m, other=0).to(tl.int64)
    p = strided_offsets(i, s1, s2, s3, x0, x1, x2, x3) + tl.where(k < 0, k + size, k) * stride
    q = strided_offsets(i, s1, s2, s3, v0, v1, v2, v3)
    if MODE == "get":
        tl.store(val + q, tl.load(x + p, mask=m), mask=m)
    elif MODE == "put":
        tl.store(x + p, tl.load(val + q, mask=m).to(x.dtype.element_ty), mask=m)
    else:
        tl.atomic_add(x + p, load_up(val + q, m, 0).to(x.dtype.element_ty), mask=m)


@triton.jit
def _scatter_mul_kernel(x, idx, val, n, s1, s2, s3, x0, x1, x2, x3, i0, i1, i2, i3, v0, v1, v2, v3, size,
                        stride):
    """x[...] *= val one update at a time (a single program: repeated targets stay exact)."""
    for j in range(n):
        i = tl.cast(j, tl.int64)
        k = tl.load(idx + strided_offsets(i, s1, s2, s3, i0, i1, i2, i3)).to(tl.int64)
        p = strided_offsets(i, s1, s2, s3, x0, x1, x2, x3) + tl.where(k < 0, k + size, k) * stride
        v = upcast(tl.load(val + strided_offsets(i, s1, s2, s3, v0, v1, v2, v3)))
        tl.store(x + p, (upcast(tl.load(x + p)) * v).to(x.dtype.element_ty))


def _check(x: CudaArray, dim: int, index: CudaArray, src, name: str) -> None:
    if index.ndim != x.ndim:
        raise RuntimeError(f"{name}(): Index tensor must have the same number of dimensions as self tensor "
                           f"(index shape {index.shape}, self shape {x.shape})")
    for d in range(x.ndim):
        if (d != dim and index.shape[d] > x.shape[d]) or (src is not None and index.shape[d] > src.shape[d]):
            raise RuntimeError(f"Size does not match at dimension {d} expected index {list(index.shape)} "
                               f"to be no larger than self {list(x.shape)} apart from dimension {dim}"
                               + ("" if src is None else f" and to be no larger than src {list(src.shape)}"))
    check_bounds(index, x.shape[dim] if x.ndim else 1, dim)


def _launch(x: CudaArray, dim: int, index: CudaArray, val: CudaArray, mode: str) -> None:
    """Walk index's shape; x is addressed at index[p] along dim, val at p."""
    if index.numel() == 0:
        return
    if x.ndim == 0:  # a 0-d gather/scatter addresses the single element
        x, index, val = (a.as_strided((1,), (0,)) for a in (x, index, val))
        dim = 0
    st = list(x.element_strides())
    stride, size = st[dim], x.shape[dim]
    st[dim] = 0
    base = x.as_strided(index.shape, st)

    def launch(shape, strides, views):
        cnt = math.prod(shape)
        args = (views[0], views[1], views[2], cnt, shape[1], shape[2], shape[3], *strides[0], *strides[1],
                *strides[2], size, stride)
        if mode == "mul":
            _scatter_mul_kernel[(1,)](*args)
        else:
            _gather_scatter_kernel[grid(cnt)](*args, MODE=mode, BLOCK=BLOCK)

    launch_strided(launch, index.shape, [base, index, val])


def gather(x: CudaArray, dim, index: CudaArray) -> CudaArray:
    """y = x[..., index, ...] along dim, elementwise over index's shape."""
    _check(x, dim, index, None, "gather")
    out = CudaArray.empty(index.shape, x.dtype)
    _launch(x, dim, index, out, "get")
    return out


def scatter(x: CudaArray, dim, index: CudaArray, src, reduce) -> CudaArray:
    """y = x; y[..., index[p], ...] = src[p] (reduce None), += ("add") or *= ("multiply")."""
    _check(x, dim, index, src if isinstance(src, CudaArray) else None, "scatter")
    acc = _accumulator(x.dtype) if reduce == "add" else x.dtype
    out = CudaArray.empty(x.shape, acc)
    copy_(out, x)
    if isinstance(src, CudaArray):
        val = slice_view(src, tuple(slice(0, n, 1) for n in index.shape)) if src.shape != index.shape else src
    else:
        val = expand(full((1,), src, x.dtype), index.shape)
    _launch(out, dim, index, val, {None: "put", "add": "add"}.get(reduce, "mul"))
    return out if acc == x.dtype else cast(out, x.dtype)


def scatter_add(x: CudaArray, dim, index: CudaArray, src: CudaArray) -> CudaArray:
    """y = x; y[..., index[p], ...] += src[p] (repeated indices accumulate)."""
    return scatter(x, dim, index, src, "add")


def index_select(x: CudaArray, dim, index_: CudaArray) -> CudaArray:
    """x with dim replaced by x's slices at the 1-D index."""
    return index(x, [index_], (dim,))


def index_add(x: CudaArray, dim, index_: CudaArray, source: CudaArray, alpha) -> CudaArray:
    """y = x; y[.., index[i], ..] += alpha * source[.., i, ..]."""
    out = clone(x)
    if alpha != 1:
        source = mul(source, alpha)
    return index_put_(out, [index_], (dim,), source, True)


@triton.jit
def _one_hot_kernel(x, out, n, C, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    v = tl.load(x + i // C, mask=m, other=-1).to(tl.int64)
    tl.store(out + i, (v == i % C).to(tl.int64), mask=m)


def one_hot(x: CudaArray, num_classes) -> CudaArray:
    """y[..., c] = (x[...] == c) as int64; num_classes -1 means x.max() + 1 (a sync, as are the checks)."""
    lo, hi = int_range(x) if x.numel() else (0, -1)
    if x.numel() and lo < 0:
        raise RuntimeError("Class values must be non-negative.")
    if num_classes == -1:
        num_classes = hi + 1 if x.numel() else 0
    elif x.numel() and hi >= num_classes:
        raise RuntimeError(f"Class values must be smaller than num_classes (got {hi} with "
                           f"num_classes={num_classes}).")
    out = CudaArray.empty(x.shape + (num_classes,), np.int64)
    n = out.numel()
    if n:
        _one_hot_kernel[grid(n)](contiguous(x), out, n, num_classes, BLOCK=BLOCK)
    return out
