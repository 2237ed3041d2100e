"""bias_gelu for the cuda device: one Triton kernel per direction over (rows, n) arrays.

The backward writes dx per element and db with a column sum over rows (a second small kernel),
so no atomics are needed (bf16 atomics are not supported in Triton's interpreter anyway).
"""
import triton
import triton.language as tl

from tinyml.backends.cuda_array import CudaArray


@triton.jit
def _forward(x, b, y, rows, n, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < rows * n
    h = tl.load(x + i, mask=m).to(tl.float32) + tl.load(b + i % n, mask=m).to(tl.float32)
    tl.store(y + i, (0.5 * h * (1.0 + tl.erf(h * 0.7071067811865476))).to(y.dtype.element_ty), mask=m)


@triton.jit
def _backward(x, b, dy, dx, rows, n, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < rows * n
    h = tl.load(x + i, mask=m).to(tl.float32) + tl.load(b + i % n, mask=m).to(tl.float32)
    cdf = 0.5 * (1.0 + tl.erf(h * 0.7071067811865476))
    pdf = 0.3989422804014327 * tl.exp(-0.5 * h * h)
    g = tl.load(dy + i, mask=m).to(tl.float32) * (cdf + h * pdf)
    tl.store(dx + i, g.to(dx.dtype.element_ty), mask=m)


@triton.jit
def _column_sum(dx, db, rows, n, BLOCK: tl.constexpr):
    cols = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    acc = tl.zeros((BLOCK,), tl.float32)
    for r in range(0, rows):
        acc += tl.load(dx + tl.cast(r, tl.int64) * n + cols, mask=cols < n, other=0.0).to(tl.float32)
    tl.store(db + cols, acc.to(db.dtype.element_ty), mask=cols < n)


def bias_gelu_forward(x: CudaArray, b: CudaArray) -> CudaArray:
    rows, n = x.shape
    y = CudaArray.empty(x.shape, x.dtype)
    _forward[(triton.cdiv(rows * n, 1024),)](x, b, y, rows, n, BLOCK=1024)
    return y


def bias_gelu_backward(x: CudaArray, b: CudaArray, dy: CudaArray):
    rows, n = x.shape
    dx = CudaArray.empty(x.shape, x.dtype)
    db = CudaArray.empty(b.shape, b.dtype)
    _backward[(triton.cdiv(rows * n, 1024),)](x, b, dy, dx, rows, n, BLOCK=1024)
    _column_sum[(triton.cdiv(n, 128),)](dx, db, rows, n, BLOCK=128)
    return dx, db
