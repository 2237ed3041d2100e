"""Small matrix and tensor-product ops, as in torch, composed of other tinyml ops (so each gradient
is that of the ops it is made of): diag, diag_embed, diagflat, trace, kron, cross, cdist, addmm,
baddbmm, addbmm, block_diag, cartesian_prod, rot90, isclose, allclose.

    diag_embed(v, k)[..., i, i + k] = v[..., i]            (v * I, padded by |k|, dims moved)
    trace(A) = sum_i A_ii
    kron(A, B)[i * B.shape + j] = A[i] B[j]                (one broadcast product, reshaped)
    cross(a, b) = (a2 b3 - a3 b2, a3 b1 - a1 b3, a1 b2 - a2 b1)   along a dim of size 3
    cdist(x1, x2, p)[..., i, j] = || x1[..., i, :] - x2[..., j, :] ||_p
    addmm(C, A, B) = beta C + alpha A B     (beta = 0: C is ignored, NaN in it included, as torch)
    baddbmm(C, A, B) = beta C + alpha bmm(A, B);   addbmm(C, A, B) = beta C + alpha sum_b A_b B_b
    rot90(x, k, dims): k quarter turns from dims[0] towards dims[1] (flip + transpose)
    isclose(a, b) = a == b  or  (both finite and |a - b| <= atol + rtol |b|)  [or both NaN]
"""
from __future__ import annotations

from .. import dtypes as _dt
from ..autograd import no_grad
from ..tensor import Tensor
from ._broadcast import broadcast_shapes
from .creation import eye
from .matmul import bmm, mm
from .movement import meshgrid
from .movement_copy import cat, flip, pad, stack
from .pointwise import where
from .reduce import norm
from .unary import isfinite, isnan

__all__ = ["addbmm", "addmm", "allclose", "baddbmm", "block_diag", "cartesian_prod", "cdist", "cross", "diag",
           "diag_embed", "diagflat", "isclose", "kron", "rot90", "trace"]


def _wrap_dim(d: int, ndim: int, name: str) -> int:
    if not -ndim <= d < ndim:
        raise IndexError(f"{name}: Dimension out of range (expected to be in range of [{-ndim}, {ndim - 1}], "
                         f"but got {d})")
    return d + ndim if d < 0 else d


def diag_embed(input: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """A tensor whose (dim1, dim2) matrices hold the last dim of input on their offset diagonal."""
    n, k = input.shape[-1] if input.ndim else 1, abs(offset)
    out_ndim = input.ndim + 1
    d1, d2 = _wrap_dim(dim1, out_ndim, "diag_embed"), _wrap_dim(dim2, out_ndim, "diag_embed")
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    mat = input.unsqueeze(-1) * eye(n, dtype=input.dtype, device=input.device)  # (..., n, n)
    if k:  # above the diagonal: zero rows at the bottom, zero columns at the left; below: mirrored
        mat = pad(mat, (k, 0, 0, k) if offset > 0 else (0, k, k, 0))
    return mat.movedim((-2, -1), (d1, d2))


def diag(input: Tensor, diagonal: int = 0) -> Tensor:
    """torch.diag: a 1-D input becomes the matrix with it on the `diagonal`-th diagonal; a 2-D input
    gives that diagonal (a copy)."""
    if input.ndim == 1:
        return diag_embed(input, diagonal)
    if input.ndim == 2:
        return input.diagonal(diagonal).clone()
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D (shape {tuple(input.shape)})")


def diagflat(input: Tensor, offset: int = 0) -> Tensor:
    """The flattened input on the offset diagonal of a 2-D matrix."""
    return diag_embed(input.reshape(-1), offset)


def trace(input: Tensor) -> Tensor:
    """Sum of the main diagonal of a matrix."""
    if input.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {input.ndim} (shape "
                           f"{tuple(input.shape)})")
    return input.diagonal().sum()


def kron(input: Tensor, other: Tensor) -> Tensor:
    """Kronecker product; the lower-rank operand gets leading size-1 dims first."""
    nd = max(input.ndim, other.ndim)
    a = input.reshape(*([1] * (nd - input.ndim) + list(input.shape)))
    b = other.reshape(*([1] * (nd - other.ndim) + list(other.shape)))
    a_shape = [s for d in a.shape for s in (d, 1)]  # (a0, 1, a1, 1, ...)
    b_shape = [s for d in b.shape for s in (1, d)]  # (1, b0, 1, b1, ...)
    prod = a.reshape(*a_shape) * b.reshape(*b_shape)
    return prod.reshape(*[x * y for x, y in zip(a.shape, b.shape)])


def cross(input: Tensor, other: Tensor, dim: int | None = None) -> Tensor:
    """Cross product of 3-vectors along `dim` (None: the first dim of size 3, as torch.cross), the
    inputs broadcast against each other."""
    shape = broadcast_shapes(input.shape, other.shape)
    if dim is None:
        dim = next((d for d, s in enumerate(shape) if s == 3), None)
        if dim is None:
            raise RuntimeError(f"no dimension of size 3 in input (shapes {tuple(input.shape)} and "
                               f"{tuple(other.shape)})")
    d = _wrap_dim(dim, len(shape), "cross")
    def size_at(t):  # the size of t at broadcast dim d (1 where t has no such dim)
        i = d - len(shape) + t.ndim
        return t.shape[i] if i >= 0 else 1
    if size_at(input) != 3 or size_at(other) != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {size_at(input)} "
                           f"and {size_at(other)} (shapes {tuple(input.shape)} and {tuple(other.shape)})")
    a, b = input.expand(*shape).unbind(d), other.expand(*shape).unbind(d)
    return stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]], d)


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0, compute_mode: str | None = None) -> Tensor:
    """Pairwise p-norm distances between the rows of x1 (..., P, M) and x2 (..., R, M): (..., P, R).
    compute_mode is accepted and ignored (every mode computes the differences directly, which is
    torch's exact path; its matmul path for p = 2 trades accuracy for speed)."""
    if x1.ndim < 2 or x2.ndim < 2:
        raise RuntimeError(f"cdist only supports at least 2D tensors, X1 got: {x1.ndim}D, X2 got: {x2.ndim}D")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: "
                           f"{x2.shape[-1]} (shapes {tuple(x1.shape)} and {tuple(x2.shape)})")
    if p < 0:
        raise RuntimeError(f"cdist only supports non-negative p values, got p={p}")
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)  # (..., P, R, M)
    return norm(diff, p, -1)


def _scaled_sum(input: Tensor, prod: Tensor, beta, alpha) -> Tensor:
    prod = prod if alpha == 1 else prod * alpha
    if beta == 0:  # torch: input is ignored, so NaN and inf in it do not propagate
        return prod.expand(*broadcast_shapes(input.shape, prod.shape))
    return (input if beta == 1 else input * beta) + prod


def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """beta input + alpha mat1 @ mat2 (input broadcast to the product's shape)."""
    return _scaled_sum(input, mm(mat1, mat2), beta, alpha)


def baddbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """beta input + alpha bmm(batch1, batch2)."""
    return _scaled_sum(input, bmm(batch1, batch2), beta, alpha)


def addbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """beta input + alpha sum_b batch1[b] @ batch2[b]."""
    return _scaled_sum(input, bmm(batch1, batch2).sum(0), beta, alpha)


def block_diag(*tensors: Tensor) -> Tensor:
    """The block-diagonal matrix of 0-D (1x1), 1-D (1xn) and 2-D blocks, in the promoted dtype."""
    if not tensors:
        raise RuntimeError("block_diag: expected at least one tensor")
    blocks = []
    for i, t in enumerate(tensors):
        if t.ndim > 2:
            raise RuntimeError(f"torch.block_diag: Input tensors must have 2 or fewer dimensions. Input {i} "
                               f"has {t.ndim} dimensions (shape {tuple(t.shape)})")
        blocks.append(t.reshape(1, 1) if t.ndim == 0 else (t.unsqueeze(0) if t.ndim == 1 else t))
    dtype = blocks[0].dtype
    for b in blocks[1:]:
        dtype = _dt.promote_types(dtype, b.dtype)
    width = sum(b.shape[1] for b in blocks)
    rows, left = [], 0
    for b in blocks:
        rows.append(pad(b.to(dtype), (left, width - left - b.shape[1])))
        left += b.shape[1]
    return cat(rows, 0)


def cartesian_prod(*tensors: Tensor) -> Tensor:
    """(N, k): every combination of one element from each 1-D tensor, the last varying fastest."""
    for i, t in enumerate(tensors):
        if t.ndim != 1:
            raise RuntimeError(f"Expect a 1D vector, but got shape {list(t.shape)} (tensor {i})")
    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return stack([g.reshape(-1) for g in grids], 1)


def rot90(input: Tensor, k: int = 1, dims=(0, 1)) -> Tensor:
    """Rotate by 90 degrees k times in the plane of dims, from dims[0] towards dims[1]."""
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if input.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {input.ndim}")
    d0, d1 = _wrap_dim(dims[0], input.ndim, "rot90"), _wrap_dim(dims[1], input.ndim, "rot90")
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    k %= 4
    if k == 1:
        return flip(input, (d1,)).transpose(d0, d1)
    if k == 2:
        return flip(input, (d0, d1))
    if k == 3:
        return flip(input, (d0,)).transpose(d0, d1)
    return input.clone()


def isclose(input: Tensor, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
            ) -> Tensor:
    """Elementwise |input - other| <= atol + rtol |other| for finite values, equality otherwise."""
    if input.dtype is not other.dtype:
        raise RuntimeError(f"{input.dtype} did not match {other.dtype} (isclose needs one dtype)")
    if rtol < 0 or atol < 0:
        raise RuntimeError(f"isclose: rtol and atol must be non-negative, got rtol={rtol} and atol={atol}")
    with no_grad():
        same = input == other
        if input.dtype is _dt.bool_:
            return same
        a, b = (input, other) if input.dtype.is_differentiable else (input.double(), other.double())
        finite = isfinite(a) & isfinite(b)
        both_nan = isnan(a) & isnan(b)
        a, b = where(finite, a, 0), where(finite, b, 0)  # no inf - inf (a NaN and a numpy warning)
        close = same | (finite & ((a - b).abs() <= atol + rtol * b.abs()))
        return close | both_nan if equal_nan else close


def allclose(input: Tensor, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    """True when isclose holds everywhere (the shapes broadcast)."""
    return bool(isclose(input, other, rtol, atol, equal_nan).all().item())

