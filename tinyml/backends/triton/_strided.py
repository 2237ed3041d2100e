"""Strided addressing shared by the Triton kernels.

Kernels address up to 4 dimensions: an element's flat index i over `shape` (row-major) becomes
the offset sum_k idx_k * stride_k of each operand. Before a launch, `collapse` merges the dims
that are contiguous with each other in every operand and drops size-1 dims, so most views
(broadcast by expand, transposes, slices) fit in 4; beyond that, `launch_strided` loops over
the leading dims in Python.
"""
from __future__ import annotations

import itertools

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray

MAX_DIMS = 4
BLOCK = 1024


def collapse(shape: tuple, strides: list[tuple]) -> tuple[tuple, list[tuple]]:
    """Merge dims that are contiguous for every operand; drop size-1 dims."""
    dims = [(s, [st[i] for st in strides]) for i, s in enumerate(shape) if s != 1]
    merged: list = []
    for size, sts in dims:
        if merged:
            psize, psts = merged[-1]
            if all(p == c * size for p, c in zip(psts, sts)):
                merged[-1] = (psize * size, sts)
                continue
        merged.append((size, sts))
    if not merged:
        merged = [(1, [0] * len(strides))]
    out_shape = tuple(m[0] for m in merged)
    out_strides = [tuple(m[1][k] for m in merged) for k in range(len(strides))]
    return out_shape, out_strides


def pad4(shape: tuple, strides: list[tuple]) -> tuple[tuple, list[tuple]]:
    pad = MAX_DIMS - len(shape)
    return (1,) * pad + tuple(shape), [(0,) * pad + tuple(st) for st in strides]


def launch_strided(launch, shape: tuple, arrays: list[CudaArray]) -> None:
    """Call `launch(shape4, strides4_per_array, arrays)` over views of at most 4 dims.

    `arrays` share `shape` (broadcast views have stride 0). Strides are in elements."""
    strides = [a.element_strides() for a in arrays]
    shape, strides = collapse(tuple(shape), strides)
    if len(shape) <= MAX_DIMS:
        s4, st4 = pad4(shape, strides)
        launch(s4, st4, arrays)
        return
    lead = len(shape) - MAX_DIMS
    for idx in itertools.product(*(range(s) for s in shape[:lead])):
        views = [a.as_strided(shape[lead:], st[lead:],
                              a.offset + sum(i * s for i, s in zip(idx, st[:lead])))
                 for a, st in zip(arrays, strides)]
        launch(shape[lead:], [st[lead:] for st in strides], views)


def grid(n: int, block: int = BLOCK) -> tuple:
    return (max(1, triton.cdiv(n, block)),)


def numel(shape) -> int:
    return int(np.prod(shape)) if len(shape) else 1


@triton.jit
def strided_offsets(i, s1, s2, s3, st0, st1, st2, st3):
    """Flat row-major index i over (s0, s1, s2, s3) -> element offset with strides st."""
    i3 = i % s3
    r = i // s3
    i2 = r % s2
    r = r // s2
    i1 = r % s1
    i0 = r // s1
    return i0 * st0 + i1 * st1 + i2 * st2 + i3 * st3


@triton.jit
def upcast(x):
    """Half-precision floats compute in float32 (bf16 arithmetic is also wrong in the interpreter)."""
    if x.dtype == tl.float16 or x.dtype == tl.bfloat16:
        x = x.to(tl.float32)
    return x
