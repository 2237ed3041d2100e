"""Triton kernels: activation functions forward/backward (cuda device), strided operands.

    gelu         x Phi(x) = x/2 (1 + erf(x/sqrt2));  tanh form x/2 (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))
    silu         x sigmoid(x);  d = s (1 + x (1 - s))
    swiglu(a,b)  silu(a) b;     da = b silu'(a), db = silu(a)
    softplus     log(1 + e^(beta x)) / beta (x beyond threshold/beta: x);  d = sigmoid(beta x)
    leaky_relu, elu, hardtanh, mish, logsigmoid
    glu(x, dim)  a, b = the halves of x along dim;  y = a sigmoid(b);  da = dy s, db = dy a s (1 - s)
                 (the halves are strided views of x and of dx: one kernel, no split or concatenation)
Computed in float32 (float64 for float64), tanh in float64 (see elementwise.py).
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_activation.py -k cuda
"""
from __future__ import annotations

import math

import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._pointwise_common import tanh64
from ._rows import load_up
from ._strided import BLOCK, grid, launch_strided, strided_offsets, upcast
from .slicing import slice_view

__all__ = ["gelu_forward", "gelu_backward", "silu_forward", "silu_backward", "swiglu_forward",
           "swiglu_backward", "softplus_forward", "softplus_backward", "leaky_relu_forward",
           "leaky_relu_backward", "elu_forward", "elu_backward", "hardtanh_forward", "hardtanh_backward",
           "mish_forward", "mish_backward", "logsigmoid_forward", "logsigmoid_backward", "glu_forward",
           "glu_backward"]


@triton.jit
def _softplus(x):
    return tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def _act(x, dy, p1, p2, OP: tl.constexpr, BACKWARD: tl.constexpr):
    """The forward value, or (BACKWARD) dy times the derivative, of activation OP at x."""
    if OP == "gelu":
        cdf = 0.5 * (1.0 + tl.erf(x * 0.7071067811865476))
        r = x * cdf
        if BACKWARD:
            r = dy * (cdf + x * 0.3989422804014327 * tl.exp(-0.5 * x * x))
    elif OP == "gelu_tanh":
        inner = 0.7978845608028654 * (x + 0.044715 * x * x * x)
        t = tanh64(inner).to(x.dtype)
        r = 0.5 * x * (1.0 + t)
        if BACKWARD:
            r = dy * (0.5 * (1.0 + t)
                      + 0.5 * x * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 0.134145 * x * x))
    elif OP == "silu":
        s = tl.sigmoid(x)
        r = x * s
        if BACKWARD:
            r = dy * s * (1.0 + x * (1.0 - s))
    elif OP == "softplus":  # p1 = beta, p2 = threshold
        bx = x * p1
        r = tl.where(bx > p2, x, _softplus(bx) / p1)
        if BACKWARD:
            r = tl.where(bx > p2, dy, dy * tl.sigmoid(bx))
    elif OP == "leaky_relu":  # p1 = negative_slope
        r = tl.where(x > 0, x, x * p1)
        if BACKWARD:
            r = tl.where(x > 0, dy, dy * p1)
    elif OP == "elu":  # p1 = alpha
        r = tl.where(x > 0, x, p1 * (tl.exp(x) - 1.0))
        if BACKWARD:
            r = tl.where(x > 0, dy, dy * p1 * tl.exp(x))
    elif OP == "hardtanh":  # p1, p2 = min_val, max_val
        r = tl.minimum(tl.maximum(x, p1), p2)
        if BACKWARD:
            r = tl.where((x > p1) & (x < p2), dy, 0.0)
    elif OP == "mish":
        t = tanh64(_softplus(x)).to(x.dtype)
        r = x * t
        if BACKWARD:
            r = dy * (t + x * (1.0 - t * t) * tl.sigmoid(x))
    else:  # logsigmoid: -softplus(-x)
        r = -_softplus(-x)
        if BACKWARD:
            r = dy * tl.sigmoid(-x)
    return r


@triton.jit
def _fwd_kernel(x, out, n, p1, p2, s1, s2, s3, a0, a1, a2, a3, OP: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    v = upcast(tl.load(x + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m))
    tl.store(out + i, _act(v, v, p1, p2, OP, False).to(out.dtype.element_ty), mask=m)


@triton.jit
def _bwd_kernel(x, dy, out, n, p1, p2, s1, s2, s3, a0, a1, a2, a3, b0, b1, b2, b3, OP: tl.constexpr,
                BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    v = upcast(tl.load(x + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m))
    g = upcast(tl.load(dy + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), mask=m))
    tl.store(out + i, _act(v, g, p1, p2, OP, True).to(out.dtype.element_ty), mask=m)


@triton.jit
def _swiglu_kernel(a, b, dy, out_a, out_b, n, s1, s2, s3, a0, a1, a2, a3, b0, b1, b2, b3, g0, g1, g2, g3,
                   BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = upcast(tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m))
    y = upcast(tl.load(b + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), mask=m))
    s = tl.sigmoid(x)
    if BACKWARD:
        g = upcast(tl.load(dy + strided_offsets(i, s1, s2, s3, g0, g1, g2, g3), mask=m))
        tl.store(out_a + i, (g * y * s * (1.0 + x * (1.0 - s))).to(out_a.dtype.element_ty), mask=m)
        tl.store(out_b + i, (g * x * s).to(out_b.dtype.element_ty), mask=m)
    else:
        tl.store(out_a + i, (x * s * y).to(out_a.dtype.element_ty), mask=m)


def _run(kernel, arrays, outs, scalars=(), **meta):
    """Launch an elementwise kernel: inputs `arrays` (strided), contiguous `outs` of one shape."""
    def launch(shape, strides, views):
        n = math.prod(shape)
        flat = [s for st in strides[:len(arrays)] for s in st]
        kernel[grid(n)](*views, n, *scalars, shape[1], shape[2], shape[3], *flat, BLOCK=BLOCK, **meta)

    if outs[0].numel():
        launch_strided(launch, outs[0].shape, list(arrays) + list(outs))
    return outs


def _forward(op, x, p1=0.0, p2=0.0):
    out = CudaArray.empty(x.shape, x.dtype)
    _run(_fwd_kernel, [x], [out], scalars=(float(p1), float(p2)), OP=op)
    return out


def _backward(op, x, dy, p1=0.0, p2=0.0):
    out = CudaArray.empty(x.shape, x.dtype)
    _run(_bwd_kernel, [x, dy], [out], scalars=(float(p1), float(p2)), OP=op)
    return out


def gelu_forward(x, approximate):
    return _forward("gelu_tanh" if approximate == "tanh" else "gelu", x)


def gelu_backward(x, dy, approximate):
    return _backward("gelu_tanh" if approximate == "tanh" else "gelu", x, dy)


def silu_forward(x):
    return _forward("silu", x)


def silu_backward(x, dy):
    return _backward("silu", x, dy)


def softplus_forward(x, beta, threshold):
    return _forward("softplus", x, beta, threshold)


def softplus_backward(x, dy, beta, threshold):
    return _backward("softplus", x, dy, beta, threshold)


def leaky_relu_forward(x, negative_slope):
    return _forward("leaky_relu", x, negative_slope)


def leaky_relu_backward(x, dy, negative_slope):
    return _backward("leaky_relu", x, dy, negative_slope)


def elu_forward(x, alpha):
    return _forward("elu", x, alpha)


def elu_backward(x, dy, alpha):
    return _backward("elu", x, dy, alpha)


def hardtanh_forward(x, min_val, max_val):
    return _forward("hardtanh", x, min_val, max_val)


def hardtanh_backward(x, dy, min_val, max_val):
    return _backward("hardtanh", x, dy, min_val, max_val)


def mish_forward(x):
    return _forward("mish", x)


def mish_backward(x, dy):
    return _backward("mish", x, dy)


def logsigmoid_forward(x):
    return _forward("logsigmoid", x)


def logsigmoid_backward(x, dy):
    return _backward("logsigmoid", x, dy)


def swiglu_forward(a, b):
    out = CudaArray.empty(a.shape, a.dtype)
    _run(_swiglu_kernel, [a, b, b], [out, out], BACKWARD=False)
    return out


def swiglu_backward(a, b, dy):
    da, db = CudaArray.empty(a.shape, a.dtype), CudaArray.empty(b.shape, b.dtype)
    _run(_swiglu_kernel, [a, b, dy], [da, db], BACKWARD=True)
    return da, db


# -- glu: the gated linear unit over the two halves of x along dim ---------------------------------
@triton.jit
def _sigmoid(x):
    e = tl.exp(-tl.abs(x))
    return tl.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@triton.jit
def _glu_kernel(a, b, g, o1, o2, n, s1, s2, s3, a0, a1, a2, a3, b0, b1, b2, b3, g0, g1, g2, g3,
                p0, p1, p2, p3, q0, q1, q2, q3, BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    av = load_up(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), m, 0)
    bv = load_up(b + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), m, 0)
    s = _sigmoid(bv)
    if BACKWARD:
        gv = load_up(g + strided_offsets(i, s1, s2, s3, g0, g1, g2, g3), m, 0)
        tl.store(o1 + strided_offsets(i, s1, s2, s3, p0, p1, p2, p3), (gv * s).to(o1.dtype.element_ty),
                 mask=m)
        tl.store(o2 + strided_offsets(i, s1, s2, s3, q0, q1, q2, q3),
                 (gv * av * s * (1 - s)).to(o2.dtype.element_ty), mask=m)
    else:
        tl.store(o1 + strided_offsets(i, s1, s2, s3, p0, p1, p2, p3), (av * s).to(o1.dtype.element_ty),
                 mask=m)


def _halves(x: CudaArray, dim: int):
    h = x.shape[dim] // 2
    pre = (slice(None),) * dim
    return slice_view(x, pre + (slice(0, h, 1),)), slice_view(x, pre + (slice(h, 2 * h, 1),))


def _glu_launch(arrays: list[CudaArray], backward: bool) -> None:
    shape = arrays[0].shape
    if not math.prod(shape):
        return

    def launch(s, strides, views):
        cnt = math.prod(s)
        _glu_kernel[grid(cnt)](*views, cnt, s[1], s[2], s[3], *(v for st in strides for v in st),
                               BACKWARD=backward, BLOCK=BLOCK)

    launch_strided(launch, shape, arrays)


def glu_forward(x: CudaArray, dim) -> CudaArray:
    """a sigmoid(b) over the two halves of x along dim."""
    a, b = _halves(x, dim)
    out = CudaArray.empty(a.shape, x.dtype)
    _glu_launch([a, b, a, out, out], False)
    return out


def glu_backward(x: CudaArray, dy: CudaArray, dim) -> CudaArray:
    """dx = [dy s, dy a s (1 - s)] along dim."""
    a, b = _halves(x, dim)
    dx = CudaArray.empty(x.shape, x.dtype)
    da, db = _halves(dx, dim)
    _glu_launch([a, b, dy, da, db], True)
    return dx
