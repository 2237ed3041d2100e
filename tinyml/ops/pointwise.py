"""Selection and fused pointwise ops: where, minimum, maximum, clamp, masked_fill, lerp, addcmul, addcdiv.

Operands (tensors or Python scalars) are promoted to one dtype and broadcast to one shape first
(`_promote`), so each kernel sees equal shapes. Derivatives:

    where(c, a, b):    (g [c], g [!c])
    maximum(a, b):     g to the larger side; on ties g/2 to each (minimum alike), as PyTorch
    clamp(x, lo, hi):  g where lo <= x <= hi; to a tensor lo where x < lo, to a tensor hi where x > hi
    masked_fill:       g where not mask; sum(g [mask]) to a 0-d tensor value
    lerp(a, b, w):     (g (1 - w), g w, g (b - a))
    addcmul(x, t1, t2, v):  (g, g v t2, g v t1)     addcdiv: (g, g v / t2, -g v t1 / t2^2)
"""
from __future__ import annotations

from .. import autograd as _ag
from .. import dtypes as _dt
from .._apply_exact import apply3
from .._saved_output import saved_two
from ..autograd import Function, is_grad_enabled
from ..backends import run, run2
from ..tensor import Tensor
from . import _complex_grad as cx
from ._broadcast import _check_scalar, _py_scalar, broadcast_shapes, complex_unsupported, prepare

__all__ = ["where", "minimum", "maximum", "clamp", "clip", "clamp_min", "clamp_max", "masked_fill", "lerp",
           "addcmul", "addcdiv"]


def _promote(*operands, name: str, dtype: _dt.dtype | None = None, extra_shapes=()) -> list:
    """Operands of one dtype and one broadcast shape (None stays None, scalars stay scalars)."""
    for o in operands:
        if o is not None and type(o) is not Tensor:
            _check_scalar(o, name)
    present = [o for o in operands if o is not None]
    dt = dtype or _dt.result_type(*present)
    shape = broadcast_shapes(*extra_shapes, *(o.shape for o in present if type(o) is Tensor))
    out = []
    for o in operands:
        if type(o) is Tensor:
            if o.dtype is not dt:
                o = o.to(dt)
            if o.shape != shape:
                o = o.expand(shape)
        elif o is not None:
            o = _py_scalar(o, dt)
        out.append(o)
    return out


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        out = run("where", cond, a, b)
        return cx.join_graph(ctx, out) if out.dtype.is_complex else out  # autograd links floats only

    @staticmethod
    def backward(ctx, g):
        (cond,) = ctx.saved_tensors
        pick = where if is_grad_enabled() else _where_kernel  # differentiable under create_graph
        ga = pick(cond, g, 0.0) if ctx.needs_input_grad[1] else None
        gb = pick(cond, 0.0, g) if ctx.needs_input_grad[2] else None
        return None, ga, gb


def _where_kernel(cond, a, b):
    return run("where", cond, a, b)


def where(condition: Tensor, input=None, other=None):
    """Elements of `input` where `condition` holds, else of `other` (tensors or scalars, broadcast);
    `where(condition)` alone is `nonzero(condition, as_tuple=True)`."""
    if input is None and other is None:
        return condition.nonzero(as_tuple=True)  # a method: indexing.py imports this module
    if input is None or other is None:
        raise TypeError("where: pass both input and other (or neither, for nonzero(condition, "
                        "as_tuple=True))")
    if type(input) is not Tensor and type(other) is not Tensor:
        # two scalars: the result takes their dtype (a Python float gives the default float)
        dt = _dt.result_type(input, other)
        input = Tensor(input, dtype=dt, device=condition.device)
    if condition.dtype is not _dt.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{condition.dtype}")
    a, b = _promote(input, other, name="where", extra_shapes=(condition.shape,))
    shape = (a if type(a) is Tensor else b).shape
    if condition.shape != shape:
        condition = condition.expand(shape)
    return Where.apply(condition, a, b)


class MinMax(Function):
    @staticmethod
    def forward(ctx, a, b, is_max):
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:  # recorded: backward needs both sides
            ctx.save_for_backward(a, b if type(b) is Tensor else None)
            ctx.b, ctx.is_max = b, is_max
        return run2("maximum" if is_max else "minimum", a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = saved_two(ctx)  # ctx.saved_tensors
        other = b if b is not None else ctx.b
        if _ag._grad_enabled:  # create_graph: the tensor formula
            win = (a > other) if ctx.is_max else (a < other)
            ga = g * where(win, 1.0, where(a == other, 0.5, 0.0))
            gb = g - ga
        else:
            ga, gb = run("minmax_backward", a, other, g, ctx.is_max)
        return ga, (gb if b is not None else None), None


def _minmax(input, other, is_max: bool, name: str):
    if type(input) is Tensor and type(other) is Tensor:
        a, b = prepare(input, other, name)
    else:
        a, b = _promote(input, other, name=name)
    if type(a) is not Tensor:  # keep the tensor first; min/max are symmetric
        a, b = b, a
    if a.dtype.is_complex:
        raise complex_unsupported(name, a.dtype)
    return apply3(MinMax, a, b, is_max)


def minimum(input: Tensor, other) -> Tensor:
    """Elementwise min with broadcasting; NaN propagates."""
    return _minmax(input, other, False, "minimum")


def maximum(input: Tensor, other) -> Tensor:
    """Elementwise max with broadcasting; NaN propagates."""
    return _minmax(input, other, True, "maximum")


class Clamp(Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x, lo if type(lo) is Tensor else None, hi if type(hi) is Tensor else None)
        ctx.lo, ctx.hi = lo, hi
        return run("clamp", x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        x, lo, hi = ctx.saved_tensors
        lo = lo if lo is not None else ctx.lo
        hi = hi if hi is not None else ctx.hi
        if is_grad_enabled():
            dx, dlo, dhi = _clamp_grads_differentiable(x, lo, hi, g)
        else:
            dx, dlo, dhi = run("clamp_backward", x, lo, hi, g)
        need = ctx.needs_input_grad
        return dx, (dlo if need[1] else None), (dhi if need[2] else None)


def _clamp_grads_differentiable(x, lo, hi, g):
    """clamp_backward's split (see the kernel) from tensor ops, for create_graph=True."""
    inside = x >= lo if lo is not None else None
    if hi is not None:
        inside = x <= hi if inside is None else inside & (x <= hi)
    dx = where(inside, g, 0.0)
    dlo = dhi = None
    if type(lo) is Tensor:
        dlo = where((x < lo) if hi is None else (x < lo) & (lo < hi), g, 0.0)
    if type(hi) is Tensor:
        dhi = where((x > hi) if lo is None else (x > hi) | (hi < lo), g, 0.0)
    return dx, dlo, dhi


def clamp(input: Tensor, min=None, max=None) -> Tensor:
    """min(max(input, min), max); bounds are scalars or tensors (broadcast), either may be None."""
    if min is None and max is None:
        raise RuntimeError("clamp: At least one of 'min' or 'max' must not be None")
    x, lo, hi = _promote(input, min, max, name="clamp")
    if x.dtype.is_complex:
        raise complex_unsupported("clamp", x.dtype)
    return Clamp.apply(x, lo, hi)


clip = clamp


def clamp_min(input: Tensor, min) -> Tensor:
    return clamp(input, min, None)


def clamp_max(input: Tensor, max) -> Tensor:
    return clamp(input, None, max)


class MaskedFill(Function):
    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.save_for_backward(mask)
        out = run("masked_fill", x, mask, value)
        return cx.join_graph(ctx, out) if out.dtype.is_complex else out

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        pick = where if is_grad_enabled() else _where_kernel
        gx = pick(mask, 0.0, g) if ctx.needs_input_grad[0] else None
        gv = pick(mask, g, 0.0).sum() if ctx.needs_input_grad[2] else None
        return gx, None, gv


def masked_fill(input: Tensor, mask: Tensor, value) -> Tensor:
    """input with `value` (a scalar or a 0-d tensor) where `mask` (bool, broadcast) is true."""
    if mask.dtype is not _dt.bool_:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype {mask.dtype}")
    if type(value) is Tensor:
        if value.ndim != 0:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor "
                               f"with {value.ndim} dimension(s) (shape {tuple(value.shape)})")
        value = value.to(input.dtype)
    else:
        _check_scalar(value, "masked_fill")
        value = _py_scalar(value, input.dtype)
    shape = broadcast_shapes(input.shape, mask.shape)
    x = input if input.shape == shape else input.expand(shape)
    mask = mask if mask.shape == shape else mask.expand(shape)
    return MaskedFill.apply(x, mask, value)


class Lerp(Function):
    @staticmethod
    def forward(ctx, a, b, w):
        need = ctx.needs_input_grad
        ctx.save_for_backward(w if type(w) is Tensor else None, a if need[2] else None,
                              b if need[2] else None)
        ctx.w = w
        return run("lerp", a, b, w)

    @staticmethod
    def backward(ctx, g):
        w, a, b = ctx.saved_tensors
        w = w if w is not None else ctx.w
        need = ctx.needs_input_grad
        ga = g * (1 - w) if need[0] else None
        gb = g * w if need[1] else None
        gw = g * (b - a) if need[2] else None
        return ga, gb, gw


def lerp(input: Tensor, end: Tensor, weight) -> Tensor:
    """input + weight (end - input); weight a scalar or a tensor (broadcast)."""
    a, b, w = _promote(input, end, weight, name="lerp")
    if not a.dtype.is_floating_point:
        raise NotImplementedError(f"lerp: expected floating point tensors, got {a.dtype}")
    return Lerp.apply(a, b, w)


class Addc(Function):
    """x + value * t1 * t2 (kernel addcmul) or x + value * t1 / t2 (addcdiv)."""

    @staticmethod
    def forward(ctx, x, t1, t2, value, kernel):
        ctx.save_for_backward(t1, t2)
        ctx.value, ctx.kernel = value, kernel
        return run(kernel, x, t1, t2, value)

    @staticmethod
    def backward(ctx, g):
        t1, t2 = ctx.saved_tensors
        need, v = ctx.needs_input_grad, ctx.value
        gv = g * v if v != 1 else g
        if ctx.kernel == "addcmul":
            g1 = gv * t2 if need[1] else None
            g2 = gv * t1 if need[2] else None
        else:
            g1 = gv / t2 if need[1] else None
            g2 = -(gv * t1) / (t2 * t2) if need[2] else None
        return g, g1, g2, None, None


def _addc(kernel: str, input, tensor1, tensor2, value):
    x, t1, t2 = _promote(input, tensor1, tensor2, name=kernel)
    if not x.dtype.is_floating_point:
        if kernel == "addcdiv":
            raise RuntimeError("Integer division with addcdiv is no longer supported; use (input + value * "
                               "torch.trunc(tensor1 / tensor2)).to(input.dtype) for integer inputs")
        value = int(value)  # PyTorch casts value to the integer dtype
    return Addc.apply(x, t1, t2, value, kernel)


def addcmul(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value=1) -> Tensor:
    """input + value * tensor1 * tensor2."""
    return _addc("addcmul", input, tensor1, tensor2, value)


def addcdiv(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value=1) -> Tensor:
    """input + value * tensor1 / tensor2."""
    return _addc("addcdiv", input, tensor1, tensor2, value)
