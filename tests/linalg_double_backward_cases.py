"""Double-backward cases for the Functions of tinyml/ops/linalg.py and linalg_derived.py, in the
format of tests/double_backward_cases.py (which merges them into its CASES). Inputs are shifted or
symmetrized inside fn so that each factorization is well defined (nonsingular, positive-definite,
distinct spectrum); outputs are gauge-invariant (squares of singular/eigen vectors), so torch's
and tinyml's sign choices need not agree."""
from __future__ import annotations

from double_backward_cases import Case, r


def _spd(T, a):
    return a @ a.mT + 3 * T.eye(a.shape[-1], dtype=T.float64)


def _shift(T, a):
    return a + 3 * T.eye(a.shape[-1], dtype=T.float64)


def _svd(T, F, a):
    u, s, vh = T.linalg.svd(a, full_matrices=False)
    return (u * u * s) @ (vh * vh)


def _eigh(T, F, a):
    w, v = T.linalg.eigh(a + a.mT)
    return (v * v) * w


def _qr(T, F, a):
    q, r_ = T.linalg.qr(a)
    return (q * q) @ (r_ * r_)


LINALG_CASES: dict[str, list[Case]] = {
    "Solve": [Case(lambda T, F, a, b: T.linalg.solve(_shift(T, a), b), (r(3, 3), r(3, 2)))],
    "Inv": [Case(lambda T, F, a: T.linalg.inv(_shift(T, a)), (r(2, 3, 3),))],
    "Det": [Case(lambda T, F, a: T.linalg.det(a), (r(2, 3, 3),))],
    "SlogDet": [Case(lambda T, F, a: T.linalg.slogdet(_shift(T, a))[1], (r(3, 3),))],
    "Svd": [Case(_svd, (r(4, 3),)), Case(_svd, (r(3, 4),))],
    "Eigh": [Case(_eigh, (r(3, 3),))],
    "Cholesky": [Case(lambda T, F, a: T.linalg.cholesky(_spd(T, a)), (r(3, 3),))],
    "Qr": [Case(_qr, (r(4, 3),))],
    "Pinv": [Case(lambda T, F, a: T.linalg.pinv(a), (r(4, 3),))],
}
