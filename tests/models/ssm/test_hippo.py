"""HiPPO matrices: small-N values written out by hand, state-spaces' construction of LegS (T M T^-1),
the NPLR structure (A + P P^T = w I + skew), the eigen-decomposition, and what LegS is for: its
state reconstructs the input's history as a Legendre series."""
import numpy as np
import pytest
from numpy.polynomial import legendre
from tinyml.models.ssm.hippo import MEASURES, hippo, normal_part, nplr, rank_correction

S3, S5, S15 = np.sqrt(3), np.sqrt(5), np.sqrt(15)


def test_legs_small_values_and_state_spaces_construction():
    A, B = hippo("legs", 3)
    np.testing.assert_allclose(A, [[-1, 0, 0], [-S3, -2, 0], [-S5, -S15, -3]], atol=1e-15)
    np.testing.assert_allclose(B, [1, S3, S5])
    # state-spaces' transition('legs'): A = T M T^-1 with M = -(tril(2q+1) - diag(q)), T = diag(sqrt(2q+1))
    q = np.arange(9.0)
    col, row = np.meshgrid(q, q)
    M = -(np.where(row >= col, 2 * q + 1, 0) - np.diag(q))  # (2q+1) broadcast along the columns
    T = np.diag(np.sqrt(2 * q + 1))
    np.testing.assert_allclose(hippo("legs", 9)[0], T @ M @ np.linalg.inv(T), atol=1e-12)


def test_other_measures_small_values():
    A, B = hippo("legt", 2)
    np.testing.assert_allclose(A, [[-0.5, 0.5 * S3], [-0.5 * S3, -1.5]])
    np.testing.assert_allclose(B, [0.5, 0.5 * S3])
    A, B = hippo("lagt", 3)
    np.testing.assert_allclose(A, [[-0.5, 0, 0], [-1, -0.5, 0], [-1, -1, -0.5]])
    np.testing.assert_allclose(B, [1, 1, 1])
    A, B = hippo("fout", 4)
    b = np.array([1, 0, np.sqrt(2), 0])
    skew = np.zeros((4, 4))
    skew[2, 3], skew[3, 2] = -np.pi, np.pi  # the cos/sin pair of frequency 1
    np.testing.assert_allclose(A, skew - np.outer(b, b))
    np.testing.assert_allclose(B, b)


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("N", [1, 2, 5, 8])
def test_normal_plus_low_rank(measure, N):
    A, _ = hippo(measure, N)
    P = rank_correction(measure, N)
    AP = A + P.T @ P
    np.testing.assert_allclose(AP, normal_part(measure, N))
    S = AP - np.mean(np.diag(AP)) * np.eye(N)
    np.testing.assert_allclose(S, -S.T, atol=1e-12)  # identity plus skew-symmetric
    np.testing.assert_allclose(AP @ AP.T, AP.T @ AP, atol=1e-10)  # hence normal
    assert P.shape == ((2 if measure == "legt" else 1), N)


@pytest.mark.parametrize("measure", MEASURES)
def test_nplr_diagonalises_the_normal_part(measure):
    N = 10
    lam, P, B, V = nplr(measure, N)
    assert lam.shape == (N // 2,) and V.shape == (N, N // 2) and P.shape[1] == N // 2 and B.shape == (N // 2,)
    assert np.all(lam.imag <= 1e-12)  # one of each conjugate pair
    # the conjugate halves complete the spectrum: A + P P^T = V L V^* + conj = 2 Re(V L V^*)
    np.testing.assert_allclose(2 * (V @ np.diag(lam) @ V.conj().T).real, normal_part(measure, N), atol=1e-10)
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(normal_part(measure, N)).imag)[: N // 2],
                               np.sort(lam.imag), atol=1e-9)
    _, Bfull = hippo(measure, N)
    np.testing.assert_allclose(B, V.conj().T @ Bfull)
    np.testing.assert_allclose(2 * (V @ B).real, Bfull, atol=1e-12)  # B lies in the span of the pairs


def test_legs_spectrum_and_fixed_point():
    lam, *_ = nplr("legs", 16)
    np.testing.assert_allclose(lam.real, -0.5)  # S4D-LegS: every mode decays at rate 1/2
    for measure in ("legs", "legt"):
        A, B = hippo(measure, 12)
        # a constant input is the first basis function: the steady state is e_0
        np.testing.assert_allclose(-np.linalg.solve(A, B), np.eye(12)[0], atol=1e-12)


def test_legs_state_reconstructs_the_history():
    """x' = (A x + B f) / t, integrated by the bilinear rule: x(1) holds the Legendre coefficients of
    f on [0, 1] (basis sqrt(2n+1) P_n(2s - 1)), so the series gives f back."""
    N, L = 16, 2000
    A, B = hippo("legs", N)
    f = lambda s: np.sin(3 * s) + 0.5 * s ** 2  # noqa: E731
    x, eye = np.zeros(N), np.eye(N)
    for k in range(L):
        h = 1.0 / (k + 0.5)  # dt / t at the step's midpoint
        x = np.linalg.solve(eye - h * A / 2, (eye + h * A / 2) @ x + h * B * f((k + 0.5) / L))
    s = np.linspace(0, 1, 41)
    series = sum(x[n] * np.sqrt(2 * n + 1) * legendre.legval(2 * s - 1, [0] * n + [1]) for n in range(N))
    np.testing.assert_allclose(series, f(s), atol=1e-5)


def test_errors_name_the_values():
    with pytest.raises(ValueError, match="'legx'.*legs, legt, lagt, fout"):
        hippo("legx", 4)
    with pytest.raises(ValueError, match="N must be a positive int, got 0"):
        rank_correction("legs", 0)
    with pytest.raises(ValueError, match="even.*N=5"):
        nplr("legs", 5)
