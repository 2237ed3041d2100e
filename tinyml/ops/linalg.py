"""Linear algebra with gradients, the ops behind `tinyml.linalg` (torch.linalg's names and
signatures): solve, inv, det, slogdet, svd, svdvals, qr, eigh, eigvalsh, cholesky, batched over the
leading dims. The factorizations are numpy's LAPACK (backends/reference/linalg.py); the gradients are
the standard matrix-calculus formulas below, written with tinyml ops, so that second derivatives
come out of the same ops. Real matrices only (a complex input is refused by name:
numpy's LAPACK would take it, the gradient formulas below are the real ones). A^{-T} = (A^{-1})^T.

    solve     X = A^{-1} B            gB = A^{-T} G,  gA = -gB X^T
    inv       Y = A^{-1}              gA = -Y^T G Y^T
    det       d = det A               gA = g d A^{-T}  (singular A: g cof(A), the cofactor matrix from
                                      the SVD, det(U) det(V) U diag(prod_{j!=i} s_j) V^T; torch 2.13
                                      returns 0 for a rank n-1 matrix, where the true gradient is cof(A))
    slogdet   (s, l = log|det A|)     gA = g_l A^{-T}  (the sign has no gradient)
    svd       A = U diag(S) V^T       gA = U [ (F o (U^T gU - gU^T U)) S + S (F o (V^T gV - gV^T V))
                                               + diag(gS) ] V^T
                                           + (I - U U^T) gU S^{-1} V^T + U S^{-1} gV^T (I - V V^T)
                                      F_ij = 1 / (s_j^2 - s_i^2) off the diagonal, 0 on it
    eigh      A = V diag(w) V^T       gA = V (diag(gw) + F o skew(V^T gV)) V^T,  F_ij = 1 / (w_j - w_i),
                                      skew(X) = (X - X^T) / 2 (torch's symmetric gradient: A is taken
                                      as symmetric, whichever triangle UPLO reads)
    cholesky  A = L L^T               gA = sym(L^{-T} Phi(L^T gL) L^{-1}),  Phi = tril, diagonal halved,
                                      sym(X) = (X + X^T) / 2
    qr        A = Q R (m >= n)        gA = (gQ + Q copyltu(M)) R^{-T},  M = R gR^T - gQ^T Q,
                                      copyltu(M) = tril(M, -1) + tril(M, -1)^T + diag(M);
              (m < n: A = [X | Y], R = [U | V]: gY = Q gV, and X's gradient is the square case with
              gQ + Y gV^T)

Degenerate spectra: as in torch, the svd and eigh gradients divide by s_j^2 - s_i^2 (w_j - w_i), so
repeated singular values (eigenvalues) give inf/NaN gradients when gU, gV are nonzero; a loss of
S (w) alone, or a gauge-invariant one, is fine. With full_matrices=True the extra columns of U
(rows of Vh) are arbitrary, so their gradients are dropped, as torch drops them. Singular or
non-positive-definite inputs raise tinyml.linalg.LinAlgError (a RuntimeError, like torch's
_LinAlgError) naming the batch element and the shape.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..autograd import Function
from ..backends import run
from ..tensor import Tensor
from ._broadcast import broadcast_shapes

__all__ = ["det", "inverse", "slogdet"]


class LinAlgError(RuntimeError):
    """A matrix the factorization or solver could not handle (singular, not positive-definite)."""


def _check_square(a: Tensor, name: str) -> None:
    if not isinstance(a, Tensor):
        raise TypeError(f"linalg.{name}: expected a Tensor, got {type(a).__name__}")
    if a.ndim < 2:
        raise RuntimeError(f"linalg.{name}: The input tensor A must have at least 2 dimensions (got shape "
                           f"{tuple(a.shape)}).")
    if a.shape[-1] != a.shape[-2]:
        raise RuntimeError(f"linalg.{name}: A must be batches of square matrices, but they are "
                           f"{a.shape[-2]} by {a.shape[-1]} matrices")
    _check_float(a, name)


def _check_matrix(a: Tensor, name: str) -> None:
    if not isinstance(a, Tensor):
        raise TypeError(f"linalg.{name}: expected a Tensor, got {type(a).__name__}")
    if a.ndim < 2:
        raise RuntimeError(f"linalg.{name}: The input tensor A must have at least 2 dimensions (got shape "
                           f"{tuple(a.shape)}).")
    _check_float(a, name)


def _check_float(a: Tensor, name: str) -> None:
    if a.dtype not in (_dt.float32, _dt.float64):
        raise RuntimeError(f"linalg.{name}: Expected a float32 or float64 tensor as input (LAPACK has no "
                           f"{a.dtype}), got {a.dtype}")


def _first_failing(a: np.ndarray, fn) -> int:
    """The first batch element on which numpy's `fn` raises (for the error message)."""
    flat = a.reshape((-1,) + a.shape[-2:])
    for i, m in enumerate(flat):
        try:
            fn(m)
        except np.linalg.LinAlgError:
            return i
    return 0


def _lapack(kernel: str, a: Tensor, *args, what: str, why: str, check=np.linalg.inv):
    """run(kernel, a, *args), with numpy's LinAlgError as a LinAlgError naming the element and shape."""
    try:
        return run(kernel, a, *args)
    except np.linalg.LinAlgError:
        where = f"(Batch element {_first_failing(a.detach().numpy(), check)}): " if a.ndim > 2 else ""
        raise LinAlgError(f"linalg.{what}: {where}{why} (input of shape {tuple(a.shape)})") from None


_SINGULAR = "The solver failed because the input matrix is singular."


def _eye(n: int, like: Tensor) -> Tensor:
    return Tensor(np.eye(n), dtype=like.dtype, device=like.device)


def _diag(v: Tensor) -> Tensor:
    """(..., k) -> (..., k, k) with v on the diagonal."""
    return v.unsqueeze(-1) * _eye(v.shape[-1], v)


def _off_diagonal_inverse(d: Tensor) -> Tensor:
    """F_ij = 1 / d_ij off the diagonal, 0 on it (d_ii is 0 there: divide by 1 to keep it finite)."""
    eye = _eye(d.shape[-1], d)
    return (1 - eye) / (d + eye)


class Solve(Function):
    @staticmethod
    def forward(ctx, a, b):
        x = _lapack("linalg_solve", a, b, what="solve", why=_SINGULAR)
        ctx.save_for_backward(a, x)
        return x

    @staticmethod
    def backward(ctx, g):
        a, x = ctx.saved_tensors
        gb = Solve.apply(a.mT, g)
        return (-(gb @ x.mT) if ctx.needs_input_grad[0] else None), gb


class Inv(Function):
    @staticmethod
    def forward(ctx, a):
        y = _lapack("linalg_inv", a, what="inv", why=_SINGULAR)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        yt = y.mT
        return -(yt @ g @ yt)


class Det(Function):
    @staticmethod
    def forward(ctx, a):
        d = run("linalg_det", a)
        ctx.save_for_backward(a, d)
        return d

    @staticmethod
    def backward(ctx, g):
        a, d = ctx.saved_tensors
        if bool(np.all(d.detach().numpy() != 0)):
            return (g * d).unsqueeze(-1).unsqueeze(-1) * Inv.apply(a).mT
        # cof(A) = det(U) det(V) U diag(c) V^T with c_i = prod_{j != i} s_j: finite for singular A
        u, s, vh = Svd.apply(a, False)
        k = s.shape[-1]
        eye = _eye(k, s)
        c = (s.unsqueeze(-2) * (1 - eye) + eye).prod(-1)
        sign = Det.apply(u) * Det.apply(vh)
        return (g * sign).unsqueeze(-1).unsqueeze(-1) * ((u * c.unsqueeze(-2)) @ vh)


class SlogDet(Function):
    @staticmethod
    def forward(ctx, a):
        sign, logabs = run("linalg_slogdet", a)
        ctx.save_for_backward(a)
        ctx.mark_non_differentiable(sign)
        return sign, logabs

    @staticmethod
    def backward(ctx, _g_sign, g_log):
        (a,) = ctx.saved_tensors
        return g_log.unsqueeze(-1).unsqueeze(-1) * Inv.apply(a).mT


class Svd(Function):
    @staticmethod
    def forward(ctx, a, full_matrices):
        u, s, vh = run("linalg_svd", a, full_matrices)
        ctx.save_for_backward(u, s, vh)
        return u, s, vh

    @staticmethod
    def backward(ctx, gu, gs, gvh):
        u, s, vh = ctx.saved_tensors
        k = s.shape[-1]
        m, n = u.shape[-2], vh.shape[-1]
        # full_matrices: the columns past k are arbitrary, so their gradients are dropped (torch too)
        u, gu, vh, gvh = u[..., :k], gu[..., :k], vh[..., :k, :], gvh[..., :k, :]
        v, gv = vh.mT, gvh.mT
        sq = s * s
        f = _off_diagonal_inverse(sq.unsqueeze(-2) - sq.unsqueeze(-1))  # 1 / (s_j^2 - s_i^2)
        utgu, vtgv = u.mT @ gu, v.mT @ gv
        inner = ((f * (utgu - utgu.mT)) * s.unsqueeze(-2) + s.unsqueeze(-1) * (f * (vtgv - vtgv.mT))
                 + _diag(gs))
        ga = u @ inner @ vh
        if m > k:
            ga = ga + ((gu - u @ utgu) / s.unsqueeze(-2)) @ vh
        if n > k:
            ga = ga + (u / s.unsqueeze(-2)) @ (gv.mT - (gv.mT @ v) @ vh)
        return ga, None


class Eigh(Function):
    @staticmethod
    def forward(ctx, a, uplo):
        w, v = _lapack("linalg_eigh", a, uplo, what="eigh", why="The algorithm failed to converge.",
                       check=np.linalg.eigvalsh)
        ctx.save_for_backward(w, v)
        return w, v

    @staticmethod
    def backward(ctx, gw, gv):
        w, v = ctx.saved_tensors
        f = _off_diagonal_inverse(w.unsqueeze(-2) - w.unsqueeze(-1))  # 1 / (w_j - w_i)
        vtgv = v.mT @ gv
        return v @ (_diag(gw) + f * (0.5 * (vtgv - vtgv.mT))) @ v.mT, None


class Cholesky(Function):
    @staticmethod
    def forward(ctx, a, upper):
        why = "The factorization could not be completed because the input is not positive-definite."
        out = _lapack("linalg_cholesky", a, upper, what="cholesky", why=why, check=np.linalg.cholesky)
        ctx.save_for_backward(out)
        ctx.upper = upper
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        low, gl = (out.mT, g.mT) if ctx.upper else (out, g)
        p = (low.mT @ gl).tril()
        p = p - 0.5 * _diag(p.diagonal(0, -2, -1))  # Phi: the lower triangle, diagonal halved
        left = Solve.apply(low.mT, p)  # L^{-T} Phi
        ga = Solve.apply(low.mT, left.mT).mT  # ... L^{-1}
        return 0.5 * (ga + ga.mT), None


class Qr(Function):
    @staticmethod
    def forward(ctx, a, mode):
        q, r = run("linalg_qr", a, "reduced" if mode == "r" else mode)
        ctx.save_for_backward(a, q, r)
        if mode == "r":  # Q is not returned (an empty tensor, as torch's); R's gradient would need it
            q = Tensor(np.empty((0,), dtype=q.detach().numpy().dtype), dtype=q.dtype, device=q.device)
        ctx.mode = mode
        return q, r

    @staticmethod
    def backward(ctx, gq, gr):
        a, q, r = ctx.saved_tensors
        m, n = a.shape[-2], a.shape[-1]
        if ctx.mode == "r":
            raise RuntimeError("The derivative of linalg.qr depends on Q, which is not computed when "
                               "mode='r'. Please use linalg.qr(A, mode='reduced') if you are going to "
                               "differentiate through linalg.qr.")
        if ctx.mode == "complete" and m > n:
            raise RuntimeError(f"The QR decomposition is not differentiable when mode='complete' and nrows > "
                               f"ncols (input of shape {tuple(a.shape)}).")
        if m >= n:
            return _qr_backward_tall(q, r, gq, gr), None
        y, grv = a[..., m:], gr[..., m:]
        gx = _qr_backward_tall(q, r[..., :m], gq + y @ grv.mT, gr[..., :m])
        return _cat_last(gx, q @ grv), None


def _qr_backward_tall(q, r, gq, gr):
    m = r @ gr.mT - gq.mT @ q
    low = m.tril(-1)
    sym = low + low.mT + _diag(m.diagonal(0, -2, -1))
    rhs = gq + q @ sym  # gA R^T = rhs  ->  gA = (R^{-1} rhs^T)^T
    return Solve.apply(r, rhs.mT).mT


def _cat_last(a: Tensor, b: Tensor) -> Tensor:
    from .movement_copy import cat  # a sibling family: cat lives with the copies

    return cat([a, b], -1)


def _solve_shapes(a: Tensor, b: Tensor, left: bool) -> tuple[Tensor, Tensor, bool]:
    """(A, B as (..., n, k) with A's and B's batch dims broadcast, whether B was a vector)."""
    vector = b.ndim == 1 or (b.ndim == a.ndim - 1 and tuple(b.shape) == tuple(a.shape[:-1]))
    if vector and not left:
        raise RuntimeError(f"linalg.solve: Vector broadcasting of the left hand side is not supported for "
                           f"left=False. In this case linalg.solve is equivalent to B / A.squeeze(-1) (A "
                           f"{tuple(a.shape)}, B {tuple(b.shape)})")
    bm = b.unsqueeze(-1) if vector else b
    n = a.shape[-1]
    rows = bm.shape[-2] if left else bm.shape[-1]
    if bm.ndim < 2 or rows != n:
        raise RuntimeError(f"linalg.solve: Incompatible shapes of A and B for the equation "
                           f"{'AX = B' if left else 'XA = B'} ({a.shape[-2]}x{n} and "
                           f"{'x'.join(str(s) for s in b.shape[-2:])}); A {tuple(a.shape)}, B "
                           f"{tuple(b.shape)}")
    try:
        batch = broadcast_shapes(a.shape[:-2], bm.shape[:-2])
    except RuntimeError:
        raise RuntimeError(f"linalg.solve: the batch dims of A {tuple(a.shape)} and B {tuple(b.shape)} are "
                           f"not broadcastable") from None
    a = a.expand(*batch, n, n) if tuple(a.shape[:-2]) != tuple(batch) else a
    bm = bm.expand(*batch, *bm.shape[-2:]) if tuple(bm.shape[:-2]) != tuple(batch) else bm
    return a, bm, vector


def solve(A: Tensor, B: Tensor, *, left: bool = True) -> Tensor:
    """torch.linalg.solve: X with A X = B (left=False: X A = B); B a vector or a batch of matrices,
    batch dims broadcast."""
    _check_square(A, "solve")
    if not isinstance(B, Tensor):
        raise TypeError(f"linalg.solve: B must be a Tensor, got {type(B).__name__}")
    if A.dtype is not B.dtype:
        raise RuntimeError(f"linalg.solve: Expected A and B to have the same dtype, but found A of type "
                           f"{A.dtype} and B of type {B.dtype} instead")
    a, bm, vector = _solve_shapes(A, B, left)
    if not left:  # X A = B  <=>  A^T X^T = B^T
        return Solve.apply(a.mT, bm.mT).mT
    x = Solve.apply(a, bm)
    return x.squeeze(-1) if vector else x


def inv(A: Tensor) -> Tensor:
    """torch.linalg.inv: A^{-1}; LinAlgError for a singular A."""
    _check_square(A, "inv")
    return Inv.apply(A)


def inverse(input: Tensor) -> Tensor:
    """torch.inverse (and Tensor.inverse): the same as linalg.inv."""
    return inv(input)


def det(A: Tensor) -> Tensor:
    """torch.linalg.det: det A over the batch."""
    _check_square(A, "det")
    return Det.apply(A)


def slogdet(A: Tensor) -> tuple[Tensor, Tensor]:
    """torch.linalg.slogdet: (sign, log|det A|); sign 0 and log -inf for a singular A."""
    _check_square(A, "slogdet")
    return SlogDet.apply(A)


def svd(A: Tensor, full_matrices: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """torch.linalg.svd: A = U diag(S) Vh, S descending; U (..., m, m or k), Vh (..., n or k, n)."""
    _check_matrix(A, "svd")
    return Svd.apply(A, bool(full_matrices))


def svdvals(A: Tensor) -> Tensor:
    """torch.linalg.svdvals: the singular values, descending (gradient U diag(gS) V^T)."""
    _check_matrix(A, "svdvals")
    return Svd.apply(A, False)[1]


def qr(A: Tensor, mode: str = "reduced") -> tuple[Tensor, Tensor]:
    """torch.linalg.qr: A = Q R, mode 'reduced' | 'complete' | 'r' (Q is then an empty tensor)."""
    _check_matrix(A, "qr")
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), "
                           f"'r', or 'complete'")
    return Qr.apply(A, mode)


def eigh(A: Tensor, UPLO: str = "L") -> tuple[Tensor, Tensor]:
    """torch.linalg.eigh: (eigenvalues ascending, eigenvectors as columns) of a symmetric A, read
    from its lower (UPLO='L') or upper ('U') triangle."""
    _check_square(A, "eigh")
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    return Eigh.apply(A, UPLO)


def eigvalsh(A: Tensor, UPLO: str = "L") -> Tensor:
    """torch.linalg.eigvalsh: the eigenvalues of eigh (gradient V diag(gw) V^T)."""
    return eigh(A, UPLO)[0]


def cholesky(A: Tensor, *, upper: bool = False) -> Tensor:
    """torch.linalg.cholesky: L with A = L L^T (upper=True: U with A = U^T U)."""
    _check_square(A, "cholesky")
    return Cholesky.apply(A, bool(upper))
