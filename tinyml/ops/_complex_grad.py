"""How complex tensors join the autograd graph, and the backward formulas that differ for them.

autograd.Function.apply links an op's output into the graph only when its dtype is floating
(tinyml/autograd.py). An op whose output may be complex links it from its forward instead:
`join_graph(ctx, out)`, behind a check that only complex results reach (floats pay nothing more).

PyTorch's convention for gradients of complex tensors: for a real loss L of z = x + iy,
z.grad = dL/dx + i dL/dy. For a holomorphic op y = f(z) (mul, div, pow, matmul, exp, log, sqrt, ...)
the chain rule is then dz = g conj(f'(z)), while the real formula computes g f'(z): so the complex
backward is the real one conjugated on both sides,

    dz = conj(backward(conj(g)))          e.g. mul: (g conj(b), g conj(a)),  exp: g conj(y)

which `holomorphic(fn)` builds from fn's own backward (the forward hands its node over with
`join_graph(ctx, out, holomorphic(Fn))`). abs is not holomorphic: d|z| = g z / |z| (0 at z = 0),
a complex gradient of a real output. Ops linear over the reals (add, sub, neg, sum, mean, views,
cat, casts) keep their formulas unchanged; an op without a complex formula raises a TypeError
naming it and the dtype (`_broadcast.complex_unsupported`).
"""
from __future__ import annotations

from ..autograd import Function
from ..backends import run
from ..tensor import Tensor
from ._broadcast import complex_unsupported
from .complex import conj

__all__: list[str] = []


def join_graph(ctx, out: Tensor, backward_fn=None) -> Tensor:
    """Link the complex `out` to the node `ctx` when it records (what Function.apply does for a
    floating output); `backward_fn` replaces the node's Function, whose backward then runs."""
    if backward_fn is not None:
        ctx.fn = backward_fn
    if True in ctx.needs_input_grad:
        out.requires_grad, out.grad_fn, out._output_nr = True, ctx, 0
    return out


def join_outputs(ctx, outs: tuple) -> tuple:
    """join_graph for the complex outputs of a multi-output node (split, unbind): output i is i."""
    if True in ctx.needs_input_grad:
        for i, out in enumerate(outs):
            out.requires_grad, out.grad_fn, out._output_nr = True, ctx, i
    return outs


_HOLOMORPHIC: dict = {}


def _conj_grad(g):
    return conj(g) if type(g) is Tensor else g


def holomorphic(fn: type) -> type:
    """A Function (named as fn, so grad_fn.name() reads the same) whose backward is fn's conjugated:
    conj(fn.backward(ctx, conj(g)))."""
    cls = _HOLOMORPHIC.get(fn)
    if cls is None:
        def backward(ctx, g):
            grads = fn.backward(ctx, conj(g))
            return tuple(map(_conj_grad, grads)) if type(grads) is tuple else _conj_grad(grads)

        cls = _HOLOMORPHIC[fn] = type(fn.__name__, (Function,), {
            "backward": staticmethod(backward), "once_differentiable": fn.once_differentiable,
            "__doc__": f"{fn.__name__} on complex tensors: conj({fn.__name__}.backward(conj(g)))"})
    return cls


def pow_forward(ctx, a, b, out: Tensor) -> Tensor:
    """The complex case of elementwise.Pow.forward, which computed `out` and saved (a, b, out)."""
    if type(a) is Tensor and type(b) is Tensor:
        raise TypeError(f"pow: a complex tensor to a tensor power is not supported (got {a.dtype} ** "
                        f"{b.dtype}); use a number exponent")
    return join_graph(ctx, out, holomorphic(ctx.fn))


class ComplexAbs(Function):
    """|z| of a complex z: dz = g z / |z|, and 0 at z = 0."""

    @staticmethod
    def backward(ctx, g):
        z = ctx.saved_tensors[0]
        r = z.abs()
        return g * (z / (r + (r == 0)))  # at z = 0: 0 over a divisor of 1


# unary kernels whose real formula is that of a holomorphic function (as torch, which has them all)
_HOLOMORPHIC_UNARY = frozenset(("exp", "exp2", "expm1", "log1p", "sqrt", "rsqrt", "square", "reciprocal",
                                "sin", "cos", "tan", "tanh", "sigmoid"))


def unary_forward(ctx, fn: type, z: Tensor) -> Tensor:
    """The complex case of unary._Unary.forward (which then saves y, or z): the holomorphic kernels
    and abs; any other (erf, relu) raises."""
    kernel = fn.kernel
    if kernel not in _HOLOMORPHIC_UNARY and kernel != "abs":
        raise complex_unsupported(kernel, z.dtype)
    y = run(kernel, z)
    if kernel == "abs":
        ctx.fn = ComplexAbs  # a real result, which Function.apply links itself
        return y
    return join_graph(ctx, y, holomorphic(fn))
