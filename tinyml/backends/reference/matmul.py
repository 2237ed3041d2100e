"""Reference matmul kernel (numpy's BLAS through np.matmul).

    out[..., i, j] = sum_k a[..., i, k] b[..., k, j]     (batch dims broadcast)

Operands are at least 2-D and of one dtype (the op unsqueezes vectors and checks shapes).
float16 and bfloat16 multiply in float32 and round once at the end, as PyTorch's CPU kernels
accumulate half types in float32 (and numpy has no BLAS for them).
"""
import numpy as np

from .reduce import sum as sum_dims

__all__ = ["matmul", "linear", "linear_backward"]

_F32 = np.dtype(np.float32)


def matmul(a, b):
    """a @ b with numpy's broadcasting of batch dims; a (..., M, K) against a matrix (K, N) folds
    the batch into one (prod(...) * M, K) GEMM instead of a loop of small ones, whatever a's layout
    (reshape copies where it must), so the result does not depend on it: a BLAS kernel may round a
    matrix's tail rows differently from rows inside a larger product."""
    dt = a.dtype
    half = dt.itemsize == 2 and dt.kind in "fV"
    if half:
        a, b = a.astype(_F32), b.astype(_F32)
    if b.ndim == 2 and a.ndim > 2:
        # the row count written out: reshape(-1, 0) is ambiguous for an empty K and numpy refuses it
        rows = int(np.prod(a.shape[:-1]))
        out = np.matmul(a.reshape(rows, a.shape[-1]), b).reshape(a.shape[:-1] + (b.shape[-1],))
    else:
        out = np.matmul(a, b)
    return out.astype(dt) if half else out


def linear(x, weight, bias):
    """x (M, K) @ weight (N, K)^T + bias (N,): one GEMM (BLAS reads the transposed weight in
    place) and the bias added into its output, as PyTorch's addmm does."""
    out = matmul(x, weight.T)
    if bias is not None:
        np.add(out, bias, out=out, casting="unsafe")
    return out


def linear_backward(g, x, weight, need_input: bool, need_weight: bool, need_bias: bool = False):
    """linear's backward, g (M, N), x (M, K), weight (N, K): dx = g weight (M, K) if need_input,
    dW = g^T x (N, K) if need_weight, db = sum over rows of g (N,) if need_bias, else None."""
    return (matmul(g, weight) if need_input else None, matmul(g.T, x) if need_weight else None,
            sum_dims(g, (0,), False, g.dtype) if need_bias else None)
