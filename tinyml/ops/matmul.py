"""Matrix products: matmul (torch.matmul's rules), mm, bmm, dot, outer, and linear.

    C = A B:   dA = G B^T,   dB = A^T G     (batched: over the broadcast batch dims)
    linear(x, W, b) = x W^T + b             (one node and one GEMM for the whole layer)

A 1-D operand is promoted to a matrix (a row on the left, a column on the right) by a view and
the added dim is removed from the result, so one Function handles every case; gradients of
broadcast batch dims are reduced with `sum_to`. Shape errors name both shapes.
"""
from __future__ import annotations

import math

from ..amp import cast_inputs
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor
from . import _complex_grad as cx
from ._broadcast import broadcast_shapes
from .elementwise import mul
from .movement import sum_to

__all__ = ["matmul", "mm", "bmm", "dot", "outer", "ger", "mv", "linear"]


class Matmul(Function):
    """a (..., M, K) @ b (..., K, N), both at least 2-D, batch dims broadcast by the kernel."""

    @staticmethod
    def forward(ctx, a, b):
        need = ctx.needs_input_grad
        ctx.save_for_backward(a if need[1] else None, b if need[0] else None)
        ctx.a_shape, ctx.b_shape = a.shape, b.shape
        out = run("matmul", a, b)
        return cx.join_graph(ctx, out, cx.holomorphic(Matmul)) if out.dtype.is_complex else out

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = sum_to(_matmul_nd(g, b.mT), ctx.a_shape)
        if ctx.needs_input_grad[1]:
            if len(ctx.b_shape) == 2 and g.ndim > 2:
                # a weight shared over the batch: one (K, B*M) @ (B*M, N) GEMM, no batch of partial sums
                # (the row count written out: reshape(-1, 0) is ambiguous when K or N is 0)
                rows, k, n = math.prod(g.shape[:-1]), a.shape[-1], g.shape[-1]
                gb = _matmul_nd(a.reshape(rows, k).mT, g.reshape(rows, n))
            else:
                gb = sum_to(_matmul_nd(a.mT, g), ctx.b_shape)
        return ga, gb


def _same_dtype(a: Tensor, b: Tensor, name: str) -> None:
    if a.dtype is not b.dtype:
        raise RuntimeError(f"{name}: expected m1 and m2 to have the same dtype, but got: {a.dtype} != "
                           f"{b.dtype}")


def _mat(shape) -> str:
    return "x".join(str(s) for s in shape)


def _matmul_nd(a: Tensor, b: Tensor) -> Tensor:
    """a @ b for a, b at least 2-D with matching inner dims (already checked)."""
    return Matmul.apply(a, b)


def matmul(input: Tensor, other: Tensor) -> Tensor:
    """torch.matmul: dot for two vectors, matrix-vector, vector-matrix, matrix products, and
    batched products whose batch dims broadcast."""
    if type(input) is not Tensor or type(other) is not Tensor:
        raise TypeError(f"matmul: expected two Tensors, got {type(input).__name__} and "
                        f"{type(other).__name__}")
    a, b = cast_inputs(input, other)  # bf16/fp16 under tinyml.autocast
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {a.ndim}D and "
                           f"{b.ndim}D")
    _same_dtype(a, b, "matmul")
    if a.ndim == 1 and b.ndim == 1:
        return dot(a, b)
    k_a, k_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
    if k_a != k_b:
        if b.ndim == 1:
            raise RuntimeError(f"size mismatch, got input ({a.shape[-2]}), mat ({_mat(a.shape[-2:])}), vec "
                               f"({b.shape[0]}) (input shapes {tuple(a.shape)} and {tuple(b.shape)})")
        rows = 1
        for s in a.shape[:-1]:
            rows *= s
        left = (rows, k_a) if b.ndim == 2 else (a.shape[-2] if a.ndim > 1 else 1, k_a)
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_mat(left)} and "
                           f"{_mat(b.shape[-2:])}) (input shapes {tuple(a.shape)} and {tuple(b.shape)})")
    if a.ndim > 2 and b.ndim > 2:
        try:
            broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except RuntimeError:
            raise RuntimeError(f"matmul: batch dimensions {tuple(a.shape[:-2])} and {tuple(b.shape[:-2])} "
                               f"are not broadcastable (input shapes {tuple(a.shape)} and "
                               f"{tuple(b.shape)})") from None
    vec_a, vec_b = a.ndim == 1, b.ndim == 1
    if vec_a:
        a = a.unsqueeze(0)
    if vec_b:
        b = b.unsqueeze(-1)
    out = _matmul_nd(a, b)
    if vec_a:
        out = out.squeeze(-2)
    if vec_b:
        out = out.squeeze(-1)
    return out


def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """(n, m) @ (m, p) -> (n, p)."""
    if input.ndim != 2:
        raise RuntimeError(f"self must be a matrix, got a {input.ndim}-D tensor of shape "
                           f"{tuple(input.shape)}")
    if mat2.ndim != 2:
        raise RuntimeError(f"mat2 must be a matrix, got a {mat2.ndim}-D tensor of shape {tuple(mat2.shape)}")
    _same_dtype(input, mat2, "mm")
    if input.shape[1] != mat2.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_mat(input.shape)} and "
                           f"{_mat(mat2.shape)})")
    return _matmul_nd(input, mat2)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """(b, n, m) @ (b, m, p) -> (b, n, p), no broadcasting."""
    if input.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor, got shape {tuple(input.shape)}")
    if mat2.ndim != 3:
        raise RuntimeError(f"batch2 must be a 3D tensor, got shape {tuple(mat2.shape)}")
    _same_dtype(input, mat2, "bmm")
    want = [input.shape[0], input.shape[2]]
    if list(mat2.shape[:2]) != want:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: {want} but got: "
                           f"{list(mat2.shape[:2])} (batch1 {tuple(input.shape)}, batch2 "
                           f"{tuple(mat2.shape)})")
    return _matmul_nd(input, mat2)


def dot(input: Tensor, tensor: Tensor) -> Tensor:
    """sum_i a_i b_i of two vectors of one size and dtype: a 0-d tensor."""
    if input.ndim != 1 or tensor.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {tensor.ndim}D tensors (shapes "
                           f"{tuple(input.shape)} and {tuple(tensor.shape)})")
    if input.dtype is not tensor.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found {input.dtype} and "
                           f"{tensor.dtype}")
    n, m = input.shape[0], tensor.shape[0]
    if n != m:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{n}] and src [{m}] to have the same "
                           f"number of elements, but got {n} and {m} elements respectively")
    return _matmul_nd(input.unsqueeze(0), tensor.unsqueeze(-1)).reshape(())


def mv(input: Tensor, vec: Tensor) -> Tensor:
    """(n, m) @ (m,) -> (n,)."""
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"mv: expected a matrix and a vector, got shapes {tuple(input.shape)} and "
                           f"{tuple(vec.shape)}")
    return matmul(input, vec)


def outer(input: Tensor, vec2: Tensor) -> Tensor:
    """out[i, j] = a_i b_j (types promote as in mul)."""
    if input.ndim != 1 or vec2.ndim != 1:
        raise RuntimeError(f"outer: expected 1D tensors, got shapes {tuple(input.shape)} and "
                           f"{tuple(vec2.shape)}")
    return mul(input.reshape(-1, 1), vec2.reshape(1, -1))


ger = outer


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight^T + bias: input (..., in), weight (out, in), bias (out,)."""
    if weight.ndim not in (1, 2):
        raise RuntimeError(f"linear: weight must be 1-D or 2-D (out_features, in_features), got shape "
                           f"{tuple(weight.shape)}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[-1]:
        rows = input.numel() // max(input.shape[-1], 1) if input.ndim else 1
        cols = input.shape[-1] if input.ndim else 1
        w = tuple(weight.shape)
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{cols} and "
                           f"{w[-1]}x{w[0] if len(w) == 2 else 1}); input shape {tuple(input.shape)}, weight "
                           f"shape {w}")
    if weight.ndim == 1 or input.ndim == 1 or (bias is not None and bias.ndim != 1):
        out = matmul(input, weight.t() if weight.ndim == 2 else weight)
        return out if bias is None else out + bias

    input, weight, bias = cast_inputs(input, weight, bias)
    if input.dtype is not weight.dtype or (bias is not None and bias.dtype is not weight.dtype):
        raise RuntimeError(f"linear: expected input, weight and bias of one dtype, got {input.dtype}, "
                           f"{weight.dtype}" + ("" if bias is None else f" and {bias.dtype}"))
    return Linear.apply(input, weight, bias)


class Linear(Function):
    """y = x W^T + b for x (..., in): one graph node and one GEMM for the whole layer.

    backward, with x and g flattened to (rows, in) and (rows, out):
        dx = g W      dW = g^T x      db = sum over rows of g
    dx, dW and db come from one kernel, linear_backward: the cpu one runs the two GEMMs side by side
    and sums db on the thread of dW.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        need = ctx.needs_input_grad
        x2 = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])  # not -1: ambiguous when in_features = 0
        # and x itself where x2 is a new tensor: made with grad off, it cannot carry a create_graph
        # dW back to x (a view of x when x is contiguous: no extra memory)
        ctx.save_for_backward(x2 if need[1] else None, weight if need[0] else None,
                              x if need[1] and x2 is not x else None)
        ctx.x_shape = x.shape
        out = run("linear", x2, weight, bias).reshape(*x.shape[:-1], weight.shape[0])
        return cx.join_graph(ctx, out, cx.holomorphic(Linear)) if out.dtype.is_complex else out

    @staticmethod
    def backward(ctx, g):
        x2, weight, x = ctx.saved_tensors
        rows = math.prod(g.shape[:-1])  # not -1: reshape(-1, 0) is ambiguous when out_features = 0
        g2 = g.reshape(rows, g.shape[-1])
        need = ctx.needs_input_grad
        if is_grad_enabled():  # create_graph=True: differentiable ops, so the gradient has a graph
            x2 = x2 if x is None else x.reshape(rows, x.shape[-1])
            return ((matmul(g2, weight).reshape(ctx.x_shape) if need[0] else None),
                    (matmul(g2.mT, x2) if need[1] else None), (g2.sum(0) if need[2] else None))
        dx, dw, db = run("linear_backward", g2, x2, weight, need[0], need[1], need[2])
        return (dx.reshape(ctx.x_shape) if need[0] else None), dw, db
