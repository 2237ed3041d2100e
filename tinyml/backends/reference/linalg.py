"""Reference kernels of the linear-algebra family: numpy's LAPACK (numpy.linalg), batched over the
leading dims. These are also the cpu device's kernels: LAPACK is already compiled code, so there is
no C++ or Triton version (the cuda device has none of these ops).

    linalg_solve:     X with A X = B               (A (..., n, n), B (..., n, k), batch dims equal)
    linalg_inv:       A^{-1}
    linalg_det:       det A
    linalg_slogdet:   (sign det A, log |det A|)
    linalg_svd:       A = U diag(S) Vh             (S descending; full_matrices as numpy/torch)
    linalg_qr:        A = Q R                      (mode "reduced" | "complete")
    linalg_eigh:      A = V diag(w) V^T            (w ascending; only the `uplo` triangle is read)
    linalg_cholesky:  A = L L^T                    (upper: A = U^T U, U = L^T)

numpy raises numpy.linalg.LinAlgError for a singular matrix (solve, inv) or one that is not
positive-definite (cholesky); the op (ops/linalg.py) turns that into tinyml.linalg.LinAlgError with
the batch element and shape. Results keep the input's float dtype (numpy computes float32 in single
precision LAPACK).
"""
from __future__ import annotations

import numpy as np

__all__ = ["linalg_cholesky", "linalg_det", "linalg_eigh", "linalg_inv", "linalg_qr", "linalg_slogdet",
           "linalg_solve", "linalg_svd"]


def _same(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    return np.require(x.astype(like.dtype, copy=False), requirements="C")


def linalg_solve(a, b):
    """X = A^{-1} B for (..., n, n) A and (..., n, k) B with equal batch dims."""
    return _same(np.linalg.solve(a, b), a)


def linalg_inv(a):
    return _same(np.linalg.inv(a), a)


def linalg_det(a):
    return _same(np.asarray(np.linalg.det(a)), a)


def linalg_slogdet(a):
    sign, logabs = np.linalg.slogdet(a)
    return _same(np.asarray(sign), a), _same(np.asarray(logabs), a)


def linalg_svd(a, full_matrices):
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    return _same(u, a), _same(s, a), _same(vh, a)


def linalg_qr(a, mode):
    """(Q, R) for mode "reduced" or "complete" (the op runs mode "r" as "reduced")."""
    q, r = np.linalg.qr(a, mode=mode)
    return _same(q, a), _same(r, a)


def linalg_eigh(a, uplo):
    w, v = np.linalg.eigh(a, UPLO=uplo)
    return _same(w, a), _same(v, a)


def linalg_cholesky(a, upper):
    low = np.linalg.cholesky(a)
    return _same(np.swapaxes(low, -1, -2) if upper else low, a)
