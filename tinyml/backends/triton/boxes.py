"""Triton kernels: box kernels for the cuda device (the reference is reference/boxes.py).

    box_aspect_atan   atan(w / h) elementwise, Cephes' double-precision atan (range reduction to
                      |x| <= 0.66 and a 4/5 rational in x^2), computed in float64: Triton's
                      interpreter has no libdevice atan
    nms_forward       the match matrix on the GPU, bit-packed: program (r, c) tests BLOCK_R boxes
                      (rows, in visiting order, gathered through `order`) against the 32 boxes of word
                      c and stores one int64 word of 32 bits per row; only later columns get bits.
                      The greedy pass then runs on the host over the words (a kept row ORs its words
                      into `removed`), as torchvision's CUDA nms does.
    nmm_forward       documented host fallback: sahi's merging is a sequential walk with a data-dependent
                      order of claims, so the boxes are copied to the host and the numpy reference runs;
                      owner and claim are uploaded back.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_boxes.py
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray, from_host, to_host_contiguous
from ..reference.boxes import nmm_forward as _nmm_on_host
from ._strided import BLOCK, grid
from .creation import contiguous

__all__ = ["box_aspect_atan", "nmm_forward", "nms_forward"]

BLOCK_ROWS = 32


@triton.jit
def _atan64(x):
    """Cephes atan in float64: atan(x) = base + r + r^3 P(r^2) / Q(r^2) after range reduction."""
    sign = tl.where(x < 0, -1.0, 1.0)
    a = tl.abs(x)
    big = a > 2.41421356237309504880  # tan(3 pi / 8)
    mid = (a > 0.66) & ~big
    r = tl.where(big, -1.0 / a, tl.where(mid, (a - 1.0) / (a + 1.0), a))
    f = tl.zeros_like(a)  # constants joined to a float64 tensor: tl.where of two literals rounds to float32
    base = tl.where(big, f + 1.57079632679489661923, tl.where(mid, f + 0.78539816339744830962, f))
    more = tl.where(big, f + 6.123233995736765886130e-17, tl.where(mid, f + 3.061616997868382943065e-17, f))
    z = r * r
    p = (((-8.750608600031904122785e-1 * z - 1.615753718733365076637e1) * z - 7.500855792314704667340e1) * z
         - 1.228866684490136173410e2) * z - 6.485021904942025371773e1
    q = ((((z + 2.485846490142306297962e1) * z + 1.650270098316988542046e2) * z
          + 4.328810604912902668951e2) * z + 4.853903996359136964868e2) * z + 1.945506571482613964425e2
    y = base + (r * (z * p / q) + r + more)
    return tl.where(x != x, x, sign * y)  # noqa: PLR0124 (NaN passes through)


@triton.jit
def _aspect_atan_kernel(w, h, y, n, BLOCK: tl.constexpr):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = o < n
    a = tl.load(w + o, mask=m, other=0.0).to(tl.float64)
    b = tl.load(h + o, mask=m, other=1.0).to(tl.float64)
    tl.store(y + o, _atan64(a / b).to(y.dtype.element_ty), mask=m)


def box_aspect_atan(w: CudaArray, h: CudaArray) -> CudaArray:
    w, h = contiguous(w), contiguous(h)
    out = CudaArray.empty(w.shape, np.result_type(w.dtype, h.dtype))
    n = int(np.prod(w.shape)) if w.shape else 1
    if n:
        _aspect_atan_kernel[grid(n)](w, h, out, n, BLOCK=BLOCK)
    return out


@triton.jit
def _nan_min(a, b):
    """min that returns NaN when either operand is NaN (np.minimum's rule, as the reference)."""
    m = tl.where(b < a, b, a)
    return tl.where(b != b, b, m)  # noqa: PLR0124


@triton.jit
def _nan_max(a, b):
    m = tl.where(a < b, b, a)
    return tl.where(b != b, b, m)  # noqa: PLR0124


@triton.jit
def _side(b, idx, k, m, ACC: tl.constexpr):
    return tl.load(b + idx * 4 + k, mask=m, other=0.0).to(ACC)


@triton.jit
def _nms_mask_kernel(boxes, order, mask, n, words, thr_ptr, IOS: tl.constexpr, INCLUSIVE: tl.constexpr,
                     ACC: tl.constexpr, BLOCK_R: tl.constexpr):
    thr = tl.load(thr_ptr).to(ACC)  # a pointer: a Python float argument would be float32
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.program_id(1).to(tl.int64) * 32 + tl.arange(0, 32)
    rm, cm = rows < n, cols < n
    ri = tl.load(order + rows, mask=rm, other=0)
    ci = tl.load(order + cols, mask=cm, other=0)
    rx1, ry1, rx2, ry2 = _side(boxes, ri, 0, rm, ACC), _side(boxes, ri, 1, rm, ACC), \
        _side(boxes, ri, 2, rm, ACC), _side(boxes, ri, 3, rm, ACC)
    cx1, cy1, cx2, cy2 = _side(boxes, ci, 0, cm, ACC), _side(boxes, ci, 1, cm, ACC), \
        _side(boxes, ci, 2, cm, ACC), _side(boxes, ci, 3, cm, ACC)
    w = _nan_min(rx2[:, None], cx2[None, :]) - _nan_max(rx1[:, None], cx1[None, :])
    h = _nan_min(ry2[:, None], cy2[None, :]) - _nan_max(ry1[:, None], cy1[None, :])
    w = tl.where(w > 0, w, 0.0)  # a NaN side counts as 0
    h = tl.where(h > 0, h, 0.0)
    inter = w * h
    ra = (rx2 - rx1) * (ry2 - ry1)
    ca = (cx2 - cx1) * (cy2 - cy1)
    if IOS:
        den = _nan_min(ra[:, None], ca[None, :])
    else:
        den = ra[:, None] + ca[None, :] - inter
    if INCLUSIVE:
        hit = tl.where(den > 0, inter / tl.where(den > 0, den, 1.0), 0.0) >= thr
    else:
        hit = inter / den > thr
    hit = hit & (cols[None, :] > rows[:, None]) & cm[None, :]
    bits = tl.where(hit, tl.full((BLOCK_R, 32), 1, tl.int64) << tl.arange(0, 32).to(tl.int64)[None, :], 0)
    word = tl.sum(bits, axis=1)  # distinct powers of two: the sum is the OR
    tl.store(mask + rows * words + tl.program_id(1), word, mask=rm)


def nms_forward(boxes: CudaArray, order, threshold, metric, inclusive):
    n = boxes.shape[0]
    if n == 0:
        return from_host(np.zeros(0, np.int64))
    boxes = contiguous(boxes)
    order = np.require(order, np.int64, "C")
    words = triton.cdiv(n, 32)
    mask = CudaArray.empty((n, words), np.dtype(np.int64))
    acc = tl.float64 if boxes.dtype == np.float64 else tl.float32
    thr = from_host(np.array([threshold], np.float64 if boxes.dtype == np.float64 else np.float32))
    _nms_mask_kernel[(triton.cdiv(n, BLOCK_ROWS), words)](
        boxes, from_host(order), mask, n, words, thr, IOS=metric == "ios", INCLUSIVE=bool(inclusive), ACC=acc,
        BLOCK_R=BLOCK_ROWS)
    bits = to_host_contiguous(mask).view(np.uint64)
    removed = np.zeros(words, np.uint64)
    kept = []
    for p in range(n):
        if not (int(removed[p >> 5]) >> (p & 31)) & 1:
            kept.append(p)
            removed |= bits[p]
    return from_host(order[np.asarray(kept, dtype=np.int64)])


def nmm_forward(boxes: CudaArray, scores: CudaArray, order, threshold, metric, greedy):
    owner, claim = _nmm_on_host(to_host_contiguous(contiguous(boxes)), to_host_contiguous(contiguous(scores)),
                                order, threshold, metric, greedy)
    return from_host(owner), from_host(claim)
