"""The linear-algebra ops built from other ops, behind `tinyml.linalg`: vector_norm, matrix_norm,
norm (torch.linalg's), and pinv. Their gradients are those of the ops they are made of, except
pinv's, which is its own Function (the formula below) so that it holds wherever the rank is constant.

    vector_norm(x, ord)   (sum |x|^ord)^(1/ord) over dim; inf / -inf: max / min |x|; 0: count of
                          nonzeros (tinyml.norm, whose gradient is 0 at x = 0 for ord 2, as torch's)
    matrix_norm(A, ord)   'fro': sqrt(sum A_ij^2);  'nuc': sum of the singular values;
                          2 / -2: the largest / smallest singular value;
                          1 / -1: max / min over columns of sum_i |A_ij|;
                          inf / -inf: max / min over rows of sum_j |A_ij|
    pinv(A)               A^+ = V diag(1/s_i if s_i > rtol max(s), else 0) U^T  (A = U diag(s) V^T)
                          gA = -P^T G P^T + (I - A P) G^T P P^T + P^T P G^T (I - P A),  P = A^+
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, no_grad
from ..tensor import Tensor
from .linalg import Svd, _check_matrix, _eye
from .reduce import norm as _vector_norm

__all__: list[str] = []


def vector_norm(x: Tensor, ord=2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """torch.linalg.vector_norm: the ord-norm of x over dim (None: all elements, flattened)."""
    if isinstance(ord, str):
        raise RuntimeError(f"linalg.vector_norm: ord must be a number, got {ord!r} (use linalg.matrix_norm "
                           f"for 'fro' and 'nuc')")
    return _vector_norm(x, ord, dim, keepdim, dtype)


def _two_dims(A: Tensor, dim, name: str) -> tuple[int, int]:
    if not isinstance(dim, (tuple, list)) or len(dim) != 2:
        raise RuntimeError(f"linalg.{name}: dim must be a 2-tuple. Got {dim}")
    d0, d1 = (d + A.ndim if d < 0 else d for d in dim)
    if not (0 <= d0 < A.ndim and 0 <= d1 < A.ndim) or d0 == d1:
        raise RuntimeError(f"linalg.{name}: dims must be different and within range for a {A.ndim}-D input, "
                           f"got {tuple(dim)} (shape {tuple(A.shape)})")
    return d0, d1


def matrix_norm(A: Tensor, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None) -> Tensor:
    """torch.linalg.matrix_norm: ord in 'fro', 'nuc', 2, -2, 1, -1, inf, -inf over the two dims."""
    _check_matrix(A, "matrix_norm") if dtype is None else None
    if dtype is not None:
        A = A.to(dtype)
    d0, d1 = _two_dims(A, dim, "matrix_norm")
    if ord == "fro":
        return _vector_norm(A, 2, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2):
        moved = A.movedim((d0, d1), (-2, -1))
        s = Svd.apply(moved, False)[1]
        out = s.sum(-1) if ord == "nuc" else (s.amax(-1) if ord == 2 else s.amin(-1))
        if keepdim:
            for d in sorted((d0, d1)):
                out = out.unsqueeze(d)
        return out
    if ord in (1, -1, math.inf, -math.inf):
        # 1-norms sum over rows (d0) then reduce over columns (d1); inf-norms the other way round
        sum_dim, red_dim = (d0, d1) if abs(ord) == 1 else (d1, d0)
        sums = A.abs().sum(sum_dim, keepdim=True)
        out = sums.amax(red_dim, keepdim=True) if ord > 0 else sums.amin(red_dim, keepdim=True)
        return out if keepdim else out.squeeze(max(d0, d1)).squeeze(min(d0, d1))
    raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported (expected 'fro', 'nuc', 2, -2, 1, -1, "
                       f"inf or -inf)")


def norm(A: Tensor, ord=None, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """torch.linalg.norm: ord=None and dim=None: the 2-norm of the flattened input; an int dim (or a
    1-D input): vector_norm; a 2-tuple dim (or a 2-D input with ord given): matrix_norm."""
    if dim is not None:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if len(dims) == 1:
            return vector_norm(A, 2 if ord is None else ord, dims, keepdim, dtype=dtype)
        if len(dims) == 2:
            return matrix_norm(A, "fro" if ord is None else ord, dims, keepdim, dtype=dtype)
        raise RuntimeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. Got {list(dims)}")
    if ord is None:
        return vector_norm(A, 2, None, keepdim, dtype=dtype)
    if A.ndim == 1:
        return vector_norm(A, ord, None, keepdim, dtype=dtype)
    if A.ndim == 2:
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. Got "
                       f"{A.ndim}D (shape {tuple(A.shape)})")


class Pinv(Function):
    @staticmethod
    def forward(ctx, a, rtol):
        with no_grad():
            u, s, vh = Svd.apply(a, False)
            if s.shape[-1]:
                keep = s > s.amax(-1, keepdim=True) * rtol
                s_inv = keep.to(s.dtype) / (s + (~keep).to(s.dtype))  # 1/s where kept; avoids 1/0
                p = (vh.mT * s_inv.unsqueeze(-2)) @ u.mT
            else:
                p = a.mT * 0
        ctx.save_for_backward(a, p)
        return p

    @staticmethod
    def backward(ctx, g):
        a, p = ctx.saved_tensors
        m, n = a.shape[-2], a.shape[-1]
        pt, gt = p.mT, g.mT
        ga = -(pt @ g @ pt)
        ga = ga + (_eye(m, a) - a @ p) @ gt @ p @ pt
        ga = ga + pt @ p @ gt @ (_eye(n, a) - p @ a)
        return ga, None


def pinv(A: Tensor, *, atol=None, rtol=None, hermitian: bool = False) -> Tensor:
    """torch.linalg.pinv (rtol relative to the largest singular value; default eps * max(m, n);
    atol is not supported: a nonzero atol raises). hermitian only selects torch's algorithm: the
    SVD gives the same result for a symmetric A."""
    _check_matrix(A, "pinv")
    if atol is not None and float(atol) != 0.0:
        raise NotImplementedError(f"linalg.pinv: atol={atol} is not supported by tinyml; use rtol")
    if rtol is None:
        eps = np.finfo(np.float32 if A.dtype.name == "float32" else np.float64).eps
        rtol = float(eps) * max(A.shape[-2:])
    return Pinv.apply(A, float(rtol))
