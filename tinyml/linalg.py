"""tinyml.linalg: linear algebra as in torch.linalg, with gradients, batched over leading dims.

    solve, inv, det, slogdet, svd, svdvals, qr, eigh, eigvalsh, cholesky   (tinyml/ops/linalg.py:
        numpy's LAPACK on the cpu device, the gradient formulas in that file's docstring)
    vector_norm, matrix_norm, norm, pinv                                  (tinyml/ops/linalg_derived.py)
    LinAlgError: raised for singular (solve, inv) or non-positive-definite (cholesky) inputs; a
        RuntimeError, as torch.linalg.LinAlgError is.

    A = tinyml.randn(3, 3, requires_grad=True)
    x = tinyml.linalg.solve(A, tinyml.randn(3))
    tinyml.linalg.matrix_norm(A, "nuc").backward()
"""
from .ops.linalg import LinAlgError, cholesky, det, eigh, eigvalsh, inv, qr, slogdet, solve, svd, svdvals
from .ops.linalg_derived import matrix_norm, norm, pinv, vector_norm

__all__ = ["LinAlgError", "cholesky", "det", "eigh", "eigvalsh", "inv", "matrix_norm", "norm", "pinv", "qr",
           "slogdet", "solve", "svd", "svdvals", "vector_norm"]
