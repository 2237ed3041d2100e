"""`Function.apply` for one, two or three positional arguments, as plain functions (issue 16).

    apply1(Fn, a)          is Fn.apply(a)
    apply2(Fn, a, b)       is Fn.apply(a, b)
    apply3(Fn, a, b, c)    is Fn.apply(a, b, c)

`Function.apply(cls, *args, **kwargs)` is a classmethod with a star signature: each call binds a
method object and packs a tuple and a dict, and CPython cannot specialise the call. The hot
elementwise ops (add, sub, mul, div, the unary math ops, maximum/minimum) call these instead;
each does exactly what `Function.apply` does for its arguments (tinyml/autograd.py; the same
ctx, needs_input_grad, next_edges, grad mode during forward, output linking and saved outputs
kept by value), in one exact-argument call.

Whoever replaces `apply` on a Function class (the profiler's timed apply, anomaly mode's stack
recording, checkpoint's node collection, a test) is seen by Function's metaclass
(tinyml/_function_type.py), which clears `plain_apply`; these functions then call `Fn.apply(...)`
itself, so every wrapper sees every op as before. Grad mode is autograd's `_grad_enabled`.
"""
from __future__ import annotations

from . import _function_type as _ft
from . import autograd as _ag
from ._graph import Context, Edge
from ._saved_output import save_outputs_by_value, saved_output
from .tensor import Tensor

_new_object = object.__new__
_NO_NEEDS1, _NO_NEEDS2, _NO_NEEDS3 = (False,), (False, False), (False, False, False)


def _link_output(ctx: Context, out):
    """Function.apply's last step for a recorded node: the output(s) get ctx as grad_fn; an output
    that forward saved is kept by value (SavedOutput, no reference cycle)."""
    if type(out) is tuple:
        ctx._n_outputs = len(out)
        ctx._output_meta = tuple((o.shape, o.dtype, o.device) for o in out)
        for i, o in enumerate(out):
            if o is not None and o.dtype.is_differentiable:
                o.requires_grad, o.grad_fn, o._output_nr = True, ctx, i
        if ctx._saved:
            save_outputs_by_value(ctx, out)
        return out
    if out is not None:
        if out.dtype.is_differentiable:
            out.requires_grad, out.grad_fn, out._output_nr = True, ctx, 0
        saved = ctx._saved
        for entry in saved:
            if entry is not None and entry[0] is out:
                ctx._saved = ((saved_output(out, 0), entry[1]),) if len(saved) == 1 else tuple(
                    [(saved_output(out, 0), e[1]) if e is not None and e[0] is out else e for e in saved])
                break
    return out


def apply1(cls, a):
    """cls.apply(a)."""
    if not _ft.plain_apply:
        return cls.apply(a)
    ctx = _new_object(Context)
    ctx.fn = cls
    ctx.next_edges = ()
    if not _ag._grad_enabled:  # nothing records: grad is off already
        ctx.needs_input_grad = _NO_NEEDS1
        return cls.forward(ctx, a)
    if not (type(a) is Tensor and a.requires_grad):
        ctx.needs_input_grad = _NO_NEEDS1
        _ag._grad_enabled = False
        try:
            return cls.forward(ctx, a)
        finally:
            _ag._grad_enabled = True
    ctx.needs_input_grad = (True,)
    _ag._grad_enabled = False
    try:
        out = cls.forward(ctx, a)
    finally:
        _ag._grad_enabled = True
    ctx.next_edges = (Edge((a.grad_fn, a._output_nr)) if a.grad_fn is not None else Edge((a, 0)),)
    if type(out) is not Tensor:
        return _link_output(ctx, out)
    if out.dtype.is_differentiable:  # _link_output's single-tensor case, inlined
        out.requires_grad, out.grad_fn, out._output_nr = True, ctx, 0
    for entry in ctx._saved:
        if entry is not None and entry[0] is out:
            return _link_output(ctx, out)  # forward saved its own output: keep it by value
    return out


def apply2(cls, a, b):
    """cls.apply(a, b)."""
    if not _ft.plain_apply:
        return cls.apply(a, b)
    ctx = _new_object(Context)
    ctx.fn = cls
    ctx.next_edges = ()
    if not _ag._grad_enabled:
        ctx.needs_input_grad = _NO_NEEDS2
        return cls.forward(ctx, a, b)
    need_a = type(a) is Tensor and a.requires_grad
    need_b = type(b) is Tensor and b.requires_grad
    ctx.needs_input_grad = (need_a, need_b) if need_a or need_b else _NO_NEEDS2
    _ag._grad_enabled = False
    try:
        out = cls.forward(ctx, a, b)
    finally:
        _ag._grad_enabled = True
    if not (need_a or need_b):
        return out
    ctx.next_edges = (
        ((Edge((a.grad_fn, a._output_nr)) if a.grad_fn is not None else Edge((a, 0))) if need_a else None),
        ((Edge((b.grad_fn, b._output_nr)) if b.grad_fn is not None else Edge((b, 0))) if need_b else None))
    if type(out) is not Tensor:
        return _link_output(ctx, out)
    if out.dtype.is_differentiable:  # _link_output's single-tensor case, inlined
        out.requires_grad, out.grad_fn, out._output_nr = True, ctx, 0
    for entry in ctx._saved:
        if entry is not None and entry[0] is out:
            return _link_output(ctx, out)  # forward saved its own output: keep it by value
    return out


def apply3(cls, a, b, c):
    """cls.apply(a, b, c)."""
    if not _ft.plain_apply:
        return cls.apply(a, b, c)
    ctx = _new_object(Context)
    ctx.fn = cls
    ctx.next_edges = ()
    if not _ag._grad_enabled:
        ctx.needs_input_grad = _NO_NEEDS3
        return cls.forward(ctx, a, b, c)
    need_a = type(a) is Tensor and a.requires_grad
    need_b = type(b) is Tensor and b.requires_grad
    need_c = type(c) is Tensor and c.requires_grad
    ctx.needs_input_grad = (need_a, need_b, need_c) if need_a or need_b or need_c else _NO_NEEDS3
    _ag._grad_enabled = False
    try:
        out = cls.forward(ctx, a, b, c)
    finally:
        _ag._grad_enabled = True
    if not (need_a or need_b or need_c):
        return out
    ctx.next_edges = (
        ((Edge((a.grad_fn, a._output_nr)) if a.grad_fn is not None else Edge((a, 0))) if need_a else None),
        ((Edge((b.grad_fn, b._output_nr)) if b.grad_fn is not None else Edge((b, 0))) if need_b else None),
        ((Edge((c.grad_fn, c._output_nr)) if c.grad_fn is not None else Edge((c, 0))) if need_c else None))
    if type(out) is not Tensor:
        return _link_output(ctx, out)
    if out.dtype.is_differentiable:  # _link_output's single-tensor case, inlined
        out.requires_grad, out.grad_fn, out._output_nr = True, ctx, 0
    for entry in ctx._saved:
        if entry is not None and entry[0] is out:
            return _link_output(ctx, out)  # forward saved its own output: keep it by value
    return out
