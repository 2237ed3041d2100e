"""Type promotion and broadcasting, resolved before any kernel runs.

`prepare(a, b)` returns operands of one dtype (PyTorch's promotion) and one shape (broadcast by
`expand`, whose backward is `sum_to`, the one place where broadcast gradients are reduced).
A Python scalar stays a scalar of the result's kind: kernels accept (array, array) of equal
shape, (array, scalar) or (scalar, array).

Backward formulas use the other side of that rule: `kernel_ready(g, x)` says prepare would change
nothing, and then, with grad off, `times(g, x)` and `negated(g)` run the mul and neg kernels
directly instead of the ops `g * x` and `-g` (the same kernels, the same bits).
"""
from __future__ import annotations

import sys

from .. import autograd as _ag
from .. import dtypes as _dt
from ..backends import run1, run2
from ..tensor import Tensor

_SCALARS = (int, float, bool, complex)


def broadcast_shapes(*shapes) -> tuple:
    """The broadcast of shapes, right-aligned (torch.broadcast_shapes); names both shapes on mismatch."""
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    for s in shapes:
        for i, n in enumerate(s, ndim - len(s)):
            if n != 1:
                if out[i] != 1 and out[i] != n:
                    raise RuntimeError(f"shapes {' and '.join(str(tuple(x)) for x in shapes)} are not "
                                       f"broadcastable: size {out[i]} vs {n} at dimension {i - ndim}")
                out[i] = n
    return tuple(out)


def _py_scalar(value, dtype: _dt.dtype):
    if dtype.is_floating_point:
        return float(value)
    if dtype.is_complex:
        return complex(value)
    if dtype.is_integer:
        if isinstance(value, float) and not value.is_integer():
            return value  # int tensor op float scalar promotes; caller handles
        return int(value)
    return bool(value)


def _check_scalar(x, name: str):
    if not isinstance(x, _SCALARS) and not hasattr(x, "__float__"):
        raise TypeError(f"{name}: expected a Tensor or a number, got {type(x).__name__}")


def prepare(a, b, name: str = "op", dtype: _dt.dtype | None = None):
    """(a, b) with one dtype and, for two tensors, one shape. `dtype` forces the compute dtype."""
    tb = type(b) is Tensor
    if type(a) is Tensor:
        if tb:
            dt = dtype or (a.dtype if a.dtype is b.dtype else _dt.result_type(a, b))
            if a.dtype is not dt:
                a = a.to(dt)
            if b.dtype is not dt:
                b = b.to(dt)
            if a._data.shape != b._data.shape:  # the arrays' tuples: no Size objects on the common path
                shape = broadcast_shapes(a.shape, b.shape)
                if a.shape != shape:
                    a = a.expand(shape)
                if b.shape != shape:
                    b = b.expand(shape)
            return a, b
        if dtype is None:
            # fast paths: a float scalar with a floating tensor, an int scalar with a float or int
            # tensor keep the tensor's dtype (what result_type gives, without its generality)
            kind, dt = type(b), a.dtype
            if kind is float and dt.is_floating_point:
                return a, b
            if kind is int and not dt.is_bool:
                return a, (float(b) if dt.is_floating_point else b)
        _check_scalar(b, name)
        dt = dtype or _dt.result_type(a, b)
        return (a if a.dtype is dt else a.to(dt)), _py_scalar(b, dt)
    if tb:
        _check_scalar(a, name)
        dt = dtype or _dt.result_type(a, b)
        return _py_scalar(a, dt), (b if b.dtype is dt else b.to(dt))
    raise TypeError(f"{name}: expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}")


def kernel_ready(g: Tensor, x) -> bool:
    """True when `prepare(g, x)` would return (g, x) unchanged: x is a Tensor with g's dtype and
    array shape, or a float beside a floating g. A backward formula with grad off then runs the
    kernel on them directly (`run("mul", g, x)` is then exactly what `g * x` computes), without
    the op's promotion, broadcasting and Function.apply."""
    if type(x) is Tensor:
        return x.dtype is g.dtype and x._data.shape == g._data.shape and type(g) is Tensor
    return type(x) is float and type(g) is Tensor and g.dtype.is_floating_point


def times(g: Tensor, x):
    """g * x in a backward formula: with grad off (no create_graph) and nothing for mul's
    promotion or broadcasting to do (`kernel_ready`, inlined), the mul kernel itself, as `g * x`
    runs it."""
    if not _ag._grad_enabled and type(g) is Tensor:
        if type(x) is Tensor:
            if x.dtype is g.dtype and x._data.shape == g._data.shape:
                return run2("mul", g, x)
        elif type(x) is float and g.dtype.is_floating_point:
            return run2("mul", g, x)
    return g * x


def negated(g: Tensor):
    """-g in a backward formula: with grad off, the neg kernel itself, as `-g` runs it."""
    return run1("neg", g) if not _ag._grad_enabled and type(g) is Tensor else -g


def complex_unsupported(name: str, dtype) -> TypeError:
    """The error of an op that takes no complex input."""
    return TypeError(f"{name}: not supported for complex tensors (got dtype {dtype}); see docs/complex.md "
                     f"for tinyml's complex ops")


def _public_caller() -> str:
    """The name of the public op that called as_float (sqrt, softmax, ...), past private helpers."""
    frame = sys._getframe(2)
    while frame.f_back is not None and frame.f_code.co_name.startswith("_"):
        frame = frame.f_back
    return frame.f_code.co_name


def as_float(x: Tensor, complex_ok: bool = False) -> Tensor:
    """x itself if floating, else x converted to the default float dtype (for exp, log, ... of ints).
    A complex x passes where the caller has a complex formula (complex_ok), else raises naming the
    calling op."""
    if x.dtype.is_floating_point:
        return x
    if x.dtype.is_complex:
        if complex_ok:
            return x
        raise complex_unsupported(_public_caller(), x.dtype)
    return x.to(_dt.get_default_dtype())
