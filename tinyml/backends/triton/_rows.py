"""Row layout shared by the reduction, scan and their backward kernels.

A reduction over `dims` runs on `to_rows(x, dims)`: x with the reduced dims moved last and made
contiguous, viewed as (n_rows, R). Each program owns one row, so a kernel needs no strides. A
backward kernel writes its result in the same layout (kept dims, then reduced dims), and
`from_rows` permutes it back to x's shape. Associative reductions of few long rows split each row
into chunks (`split_plan`): program p reduces chunk p % S of row p // S into a partial, and a
second launch of the same kernel combines the S partials of each row. Values given in keepdim form (the
forward output y, the upstream gradient g) hold one value per row in row order: `per_row` flattens them.
"""
from __future__ import annotations

import math

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._strided import upcast
from ._view import expand, permute, view
from .creation import contiguous
from .reduce import reduced_shape, to_rows

__all__: list = []

MAX_BLOCK = 1024


def block_for(R: int, cap: int = MAX_BLOCK) -> int:
    """A power-of-two chunk covering a row (at most `cap`; longer rows loop over chunks)."""
    b = 16
    while b < R and b < cap:
        b *= 2
    return b


def split_plan(n_rows: int, R: int) -> tuple[int, int]:
    """(S, CH): split each row into S chunks of CH elements when rows are few and long, so that a
    full reduction runs on many programs (partials, then one combining launch); (1, R) otherwise."""
    if n_rows >= 128 or R <= 8 * MAX_BLOCK:
        return 1, R
    target = max(2, 512 // n_rows)  # programs per row
    ch = max(MAX_BLOCK, triton.cdiv(triton.cdiv(R, target), MAX_BLOCK) * MAX_BLOCK)
    return triton.cdiv(R, ch), ch


def acc_type(dtype: np.dtype):
    """Triton accumulation type: float64 for float64, int64 for ints and bool, else float32."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return tl.float64
    if dtype.kind in "iub":
        return tl.int64
    return tl.float32


def float_acc(dtype: np.dtype):
    """float64 for float64, float32 for every other dtype (ints included)."""
    return tl.float64 if np.dtype(dtype) == np.float64 else tl.float32


def per_row(a: CudaArray, shape: tuple, dims: tuple) -> CudaArray:
    """A keepdim-form array (x's `shape` with `dims` of size 1, or broadcastable to it) as a
    contiguous (n_rows,) array in row order."""
    kd = reduced_shape(tuple(shape), tuple(dims), True)
    if a.shape != kd:
        a = expand(a, kd)
    return view(contiguous(a), (numel(kd),))


def rows_of(x: CudaArray, dims: tuple) -> tuple[CudaArray, int, int]:
    """(rows, n_rows, R) for x reduced over dims."""
    rows, _, R = to_rows(x, tuple(dims))
    return rows, rows.shape[0], R


def from_rows(out_rows: CudaArray, shape: tuple, dims: tuple) -> CudaArray:
    """Inverse of to_rows: (n_rows, R) in (kept..., reduced...) order -> a contiguous array of `shape`."""
    keep = [d for d in range(len(shape)) if d not in dims]
    order = keep + list(dims)
    moved = view(out_rows, tuple(shape[d] for d in order))
    if order == list(range(len(shape))):
        return moved
    inverse = [order.index(d) for d in range(len(shape))]
    return contiguous(permute(moved, inverse))


def finish(out: CudaArray, shape: tuple, dims: tuple, keepdim: bool) -> CudaArray:
    """A (n_rows,) result viewed as the reduced shape."""
    return view(out, reduced_shape(shape, tuple(dims), keepdim))


def numel(shape) -> int:
    return math.prod(shape)


@triton.jit
def load_up(ptrs, mask, other):
    """Masked load converted to float32 for 16-bit floats, `other` in the masked lanes (applied
    after the load: Triton's interpreter fills 16-bit `other` values wrongly)."""
    return tl.where(mask, upcast(tl.load(ptrs, mask=mask)), other)
