"""tinyml.linalg: linear algebra as in torch.linalg, with gradients, batched over leading dims.

    solve, inv, det, slogdet, svd, svdvals, qr, eigh, eigvalsh, cholesky   (tinyml/ops/linalg.py:
        numpy's LAPACK on the cpu device, the gradient formulas in that file's docstring)
    vector_norm, matrix_norm, norm, pinv                                  (tinyml/ops/linalg_derived.py)
    matrix_rank, matrix_power, multi_dot, vecdot                          (below: compositions)
    LinAlgError: raised for singular (solve, inv) or non-positive-definite (cholesky) inputs; a
        RuntimeError, as torch.linalg.LinAlgError is.

    A = tinyml.randn(3, 3, requires_grad=True)
    x = tinyml.linalg.solve(A, tinyml.randn(3))
    tinyml.linalg.matrix_norm(A, "nuc").backward()
"""
from __future__ import annotations

from . import dtypes as _dt
from .ops import eye, matmul, where
from .ops.linalg import LinAlgError, cholesky, det, eigh, eigvalsh, inv, qr, slogdet, solve, svd, svdvals
from .ops.linalg_derived import matrix_norm, norm, pinv, vector_norm
from .tensor import Tensor

__all__ = ["LinAlgError", "cholesky", "det", "eigh", "eigvalsh", "inv", "matrix_norm", "matrix_power",
           "matrix_rank", "multi_dot", "norm", "pinv", "qr", "slogdet", "solve", "svd", "svdvals", "vecdot",
           "vector_norm"]


def matrix_rank(A: Tensor, *, atol=None, rtol=None, hermitian: bool = False) -> Tensor:
    """The number of singular values (|eigenvalues| when hermitian) above max(atol, rtol * sigma_max),
    per matrix, as int64; with neither tolerance given, rtol = eps(dtype) * max(m, n) (torch's rule)."""
    if not isinstance(A, Tensor) or A.ndim < 2 or not A.dtype.is_floating_point:
        got = f"{A.dtype} of shape {tuple(A.shape)}" if isinstance(A, Tensor) else type(A).__name__
        raise RuntimeError(f"linalg.matrix_rank: expected a floating point tensor of 2 or more dims, got "
                           f"{got}")
    s = eigvalsh(A).abs() if hermitian else svdvals(A)
    s = s.detach()
    if atol is None and rtol is None:
        rtol = _dt.FloatInfo(A.dtype).eps * max(A.shape[-2:])
    top = s.amax(-1, keepdim=True) if s.shape[-1] else s.sum(-1, keepdim=True)
    tol = top * (rtol or 0.0)
    if atol is not None:  # tol = max(atol, rtol * sigma_max); a tensor atol broadcasts per matrix
        atol = atol.unsqueeze(-1) if isinstance(atol, Tensor) else float(atol)
        tol = where(tol > atol, tol, atol)
    return (s > tol).sum(-1)


def matrix_power(A: Tensor, n: int) -> Tensor:
    """A^n by repeated squaring (n < 0: inv(A)^-n; n = 0: the identity, batched)."""
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"linalg.matrix_power: A must be batches of square matrices, got shape "
                           f"{tuple(A.shape)}")
    if n == 0:
        return eye(A.shape[-1], dtype=A.dtype, device=A.device).expand(A.shape).clone()
    base, n = (inv(A), -n) if n < 0 else (A, n)
    result = None
    while n:
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return result


def multi_dot(tensors) -> Tensor:
    """The product of a chain of matrices (the first may be a vector (n,), the last (n,) too), left to
    right."""
    tensors = list(tensors)
    if len(tensors) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(tensors)}")
    out = tensors[0]
    for t in tensors[1:]:
        out = matmul(out, t)
    return out


def vecdot(x: Tensor, y: Tensor, *, dim: int = -1) -> Tensor:
    """sum(x * y, dim) over broadcast x and y (real tensors: no conjugation)."""
    return (x * y).sum(dim)
