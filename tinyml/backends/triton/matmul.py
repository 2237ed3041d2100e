"""Triton kernel: batched matmul for the cuda device, out[b] = a[b] @ b[b] (batch dims broadcast).

Tiles of BLOCK_M x BLOCK_N accumulate in float32 over K in steps of BLOCK_K; float32 inputs
use tf32 tensor cores on the GPU, bfloat16/float16 feed tl.dot directly with float32
accumulation (under the interpreter, half inputs are converted to float32 first: its bf16
arithmetic is wrong). float64 accumulates in float64 (tl.dot on float64 tiles: the GPU's FP64
tensor-core or FMA path, IEEE products, so the cpu device's dtypes all run on cuda), with smaller
tiles (a float64 tile takes twice the shared memory). A few tile configs are autotuned on the GPU
per (M, N, K) and dtype.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_matmul.py -k cuda
"""
from __future__ import annotations

import math

import triton
import triton.language as tl

from .. import cuda
from ..cuda_array import CudaArray
from ._view import expand, permute
from .elementwise import add
from .reduce import sum as sum_dims

__all__ = ["matmul", "linear", "linear_backward"]

_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=4),
]
_CONFIGS_F64 = [
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 16}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 16}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 16}, num_warps=4, num_stages=2),
]


@triton.jit
def _matmul_kernel(a, b, c, M, N, K, sab, sam, sak, sbb, sbk, sbn, scb, scm, scn,
                   UPCAST: tl.constexpr, F64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    batch = tl.program_id(2).to(tl.int64)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    a_ptr = a + batch * sab + rm[:, None] * sam + rk[None, :] * sak
    b_ptr = b + batch * sbb + rk[:, None] * sbk + rn[None, :] * sbn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float64 if F64 else tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k_ok = (k0 + rk) < K
        x = tl.load(a_ptr, mask=(rm[:, None] < M) & k_ok[None, :], other=0.0)
        y = tl.load(b_ptr, mask=k_ok[:, None] & (rn[None, :] < N), other=0.0)
        if UPCAST:
            x = x.to(tl.float32)
            y = y.to(tl.float32)
        acc += tl.dot(x, y)
        a_ptr += BLOCK_K * sak
        b_ptr += BLOCK_K * sbk
    c_ptr = c + batch * scb + rm[:, None] * scm + rn[None, :] * scn
    tl.store(c_ptr, acc.to(c.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))


_autotuned: dict[bool, object] = {}


def _kernel(f64: bool):
    """The autotuned kernel on a GPU (float64 with its own tile list); fixed small tiles under the
    interpreter (each program is slow there, and autotuning would run every config)."""
    if cuda.emulated():
        return _matmul_kernel, {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32}
    if f64 not in _autotuned:
        configs = _CONFIGS_F64 if f64 else _CONFIGS
        _autotuned[f64] = triton.autotune(configs, key=["M", "N", "K"])(_matmul_kernel)
    return _autotuned[f64], {}


def matmul(a: CudaArray, b: CudaArray) -> CudaArray:
    """a (..., M, K) @ b (..., K, N) with broadcast batch dims (float32, float16, bfloat16, float64)."""
    if a.dtype.name not in ("float32", "float16", "bfloat16", "float64") or b.dtype != a.dtype:
        raise TypeError(f"cuda matmul supports float32, float16, bfloat16 and float64 operands of one dtype, "
                        f"got {a.dtype} and {b.dtype}")
    M, K = a.shape[-2:]
    N = b.shape[-1]
    batch_shape = tuple(max(x, y) for x, y in zip((1,) * (b.ndim - a.ndim) + a.shape[:-2],
                                                  (1,) * (a.ndim - b.ndim) + b.shape[:-2]))
    a = expand(a, batch_shape + (M, K))
    b = expand(b, batch_shape + (K, N))
    out = CudaArray.empty(batch_shape + (M, N), a.dtype)
    if out.numel() == 0:
        return out
    nb = math.prod(batch_shape)
    # Flatten the batch dims into one; a batch dim that does not flatten (a mixed view) is looped.
    a3 = _flatten_batch(a, nb, M, K)
    b3 = _flatten_batch(b, nb, K, N)
    c3 = out.as_strided((nb, M, N), (M * N, N, 1))
    f64 = a.dtype.name == "float64"
    kernel, meta = _kernel(f64)
    upcast = cuda.emulated() and a.dtype.itemsize == 2
    for pa, pb, pc, count in _batches(a3, b3, c3):
        sa, sb, sc = pa.element_strides(), pb.element_strides(), pc.element_strides()

        def grid(m):
            return (triton.cdiv(M, m["BLOCK_M"]), triton.cdiv(N, m["BLOCK_N"]), count)

        kernel[grid](pa, pb, pc, M, N, K, *sa, *sb, *sc, UPCAST=upcast, F64=f64, **meta)
    return out


def _flatten_batch(x: CudaArray, nb: int, rows: int, cols: int):
    """(nb, rows, cols) view of x when its batch dims collapse to one stride, else a list of
    per-batch (1, rows, cols) views."""
    st = x.element_strides()
    batch_st = st[:-2]
    shape = x.shape[:-2]
    ok = all(batch_st[i] == batch_st[i + 1] * shape[i + 1] for i in range(len(shape) - 1))
    if ok:
        return x.as_strided((nb, rows, cols), ((batch_st[-1] if batch_st else 0), st[-2], st[-1]))
    views = []
    for idx in range(nb):
        off, rem = x.offset, idx
        for s, bs in zip(reversed(shape), reversed(batch_st)):
            off += (rem % s) * bs
            rem //= s
        views.append(x.as_strided((1, rows, cols), (0, st[-2], st[-1]), off))
    return views


def _batches(a3, b3, c3):
    if not isinstance(a3, list) and not isinstance(b3, list):
        yield a3, b3, c3, c3.shape[0]
        return
    nb = c3.shape[0]
    for i in range(nb):
        pa = a3[i] if isinstance(a3, list) else a3.as_strided((1,) + a3.shape[1:], a3.element_strides(),
                                                               a3.offset + i * a3.element_strides()[0])
        pb = b3[i] if isinstance(b3, list) else b3.as_strided((1,) + b3.shape[1:], b3.element_strides(),
                                                               b3.offset + i * b3.element_strides()[0])
        pc = c3.as_strided((1,) + c3.shape[1:], c3.element_strides(), c3.offset + i * c3.element_strides()[0])
        yield pa, pb, pc, 1


def linear(x: CudaArray, weight: CudaArray, bias) -> CudaArray:
    """x (M, K) @ weight (N, K)^T (+ bias): the GEMM reads the weight transposed through strides."""
    out = matmul(x, permute(weight, (1, 0)))
    return out if bias is None else add(out, expand(bias, out.shape))


def linear_backward(g: CudaArray, x, weight, need_input: bool, need_weight: bool, need_bias: bool = False):
    """dx = g weight and dW = g^T x (g^T read through its strides), as two launches; db = the sum of
    g's rows (the reduce kernel)."""
    return (matmul(g, weight) if need_input else None, matmul(permute(g, (1, 0)), x) if need_weight else None,
            sum_dims(g, (0,), False, g.dtype) if need_bias else None)
