"""HiPPO matrices ("How to Train Your HiPPO", Gu et al. 2022): the state space x' = A x + B u whose
state x(t) holds the coefficients of the projection of the input's history onto a basis of
orthogonal polynomials (or Fourier modes) under a measure. In float64 numpy: these are the
initial values the SSM layers start from, computed once.

    legs  scaled Legendre, uniform measure on [0, t] (x' = (A x + B u) / t for the true LegS;
          S4 uses the time-invariant A, B):
            A_nk = -sqrt((2n+1)(2k+1))  (n > k),   -(n+1)  (n = k),   0  (n < k);   B_n = sqrt(2n+1)
    legt  translated Legendre, uniform on a sliding window [t - 1, t] (state-spaces' halved form):
            A_nk = -sqrt((2n+1)(2k+1)) / 2 * ((-1)^(n-k) if n < k else 1);          B_n = sqrt(2n+1) / 2
    lagt  translated Laguerre, measure exp(-(t - s)):
            A = I/2 - tril(ones);                                                   B_n = 1
    fout  translated Fourier on the window [t - 1, t]: A = pi (blocks [[0, -2k], [2k, 0]] of
          frequencies k, shifted by one index) - B B^T, with B = (1, 0, sqrt2, 0, sqrt2, 0, ...)

Each A is normal plus low rank (NPLR): A + P P^T = w I + S with S skew-symmetric, for the rank
correction P (rank 1: legs P_n = sqrt(n + 1/2); lagt P_n = sqrt(1/2); fout P = B; rank 2: legt,
the even and odd entries of sqrt(n + 1/2)). `nplr` diagonalises that normal part, A + P P^T =
V diag(Lambda) V^*, and keeps one eigenvalue of each conjugate pair: the diagonal state
space of S4D-LegS is Lambda (with B and P moved into the eigenbasis, V^* B and V^* P).
"""
from __future__ import annotations

import numpy as np

__all__ = ["MEASURES", "hippo", "normal_part", "nplr", "rank_correction"]

MEASURES = ("legs", "legt", "lagt", "fout")


def _check(measure: str, N: int) -> None:
    if measure not in MEASURES:
        raise ValueError(f"hippo: unknown measure {measure!r}; expected one of {', '.join(MEASURES)}")
    if not isinstance(N, (int, np.integer)) or N < 1:
        raise ValueError(f"hippo: the state size N must be a positive int, got {N!r}")


def hippo(measure: str, N: int) -> tuple[np.ndarray, np.ndarray]:
    """(A (N, N), B (N,)) in float64 for measure legs, legt, lagt or fout (formulas above)."""
    _check(measure, N)
    n = np.arange(N, dtype=np.float64)
    row, col = n[:, None], n[None, :]
    r = np.sqrt(2 * n + 1)
    if measure == "legs":
        A = -np.where(row > col, r[:, None] * r[None, :], 0.0) - np.diag(n + 1)
        B = r.copy()
    elif measure == "legt":
        sign = np.where(row < col, (-1.0) ** (row - col), 1.0)
        A = -0.5 * r[:, None] * sign * r[None, :]
        B = 0.5 * r
    elif measure == "lagt":
        A = np.eye(N) / 2 - np.tril(np.ones((N, N)))
        B = np.ones(N)
    else:  # fout: cos/sin pairs of frequency k, the constant mode first
        freqs = np.arange(N // 2, dtype=np.float64)
        d = np.stack([np.zeros(N // 2), freqs], axis=-1).reshape(-1)[1:]
        A = np.zeros((N, N))
        if len(d):
            A[: len(d) + 1, : len(d) + 1] = np.pi * (-np.diag(d, 1) + np.diag(d, -1))
        B = _fout_b(N)
        A = A - np.outer(B, B)  # the other end of the window, u(t - 1), folded into A
    return A, B


def _fout_b(N: int) -> np.ndarray:
    B = np.zeros(N)
    B[0::2] = np.sqrt(2.0)
    B[0] = 1.0
    return B


def rank_correction(measure: str, N: int) -> np.ndarray:
    """P (rank, N), float64: A + sum_r P_r P_r^T = w I + a skew-symmetric matrix."""
    _check(measure, N)
    n = np.arange(N, dtype=np.float64)
    if measure == "legs":
        return np.sqrt(n + 0.5)[None]
    if measure == "legt":
        p = np.sqrt(n + 0.5)  # sqrt(2n+1) halved (times 2^-1/2), as A was halved
        even, odd = p.copy(), p.copy()
        even[1::2], odd[0::2] = 0.0, 0.0
        return np.stack([odd, even])
    if measure == "lagt":
        return np.full((1, N), np.sqrt(0.5))
    return _fout_b(N)[None]


def normal_part(measure: str, N: int) -> np.ndarray:
    """A + P P^T (N, N): the normal matrix w I + S, S skew-symmetric."""
    A, _ = hippo(measure, N)
    P = rank_correction(measure, N)
    return A + P.T @ P


def nplr(measure: str, N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(Lambda (N/2,), P (rank, N/2), B (N/2,), V (N, N/2)), complex128, for even N: the eigenvalues
    of A + P P^T with negative imaginary part (one of each conjugate pair, ascending by imaginary
    part), its orthonormal eigenvectors V, and V^* P, V^* B. A = V Lambda V^* - P P^T on the span."""
    _check(measure, N)
    if N % 2:
        raise ValueError(f"nplr: N must be even (conjugate pairs of eigenvalues), got N={N}")
    AP = normal_part(measure, N)
    w = np.mean(np.diag(AP))
    skew = AP - w * np.eye(N)
    # skew is real skew-symmetric, so -i skew is Hermitian: eigh gives exact conjugate pairs and
    # orthonormal eigenvectors (the spectrum is w + i * eigenvalues of -i skew)
    w_im, V = np.linalg.eigh(-1j * skew)
    order = np.argsort(w_im)
    lam = w + 1j * w_im[order[: N // 2]]
    V = V[:, order[: N // 2]]
    if abs(lam[-1].imag) < 1e-4:  # fout: one zero pair; its eigenvector is the (cos, sin) constant mode
        V[:, -1] = 0.0
        V[0, -1], V[1, -1] = 2 ** -0.5, 2 ** -0.5 * 1j
    _, B = hippo(measure, N)
    P = rank_correction(measure, N)
    Vh = V.conj().T
    return lam, P.astype(np.complex128) @ Vh.T, Vh @ B.astype(np.complex128), V
