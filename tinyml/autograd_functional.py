"""tinyml.autograd.functional (torch.autograd.functional): derivatives of a whole function.

    vjp(f, x, v)      = (f(x), v^T J)          one backward
    jvp(f, x, v)      = (f(x), J v)            the double-backward trick: g(u) = J^T u is linear in u,
                                                so d(g . v)/du = J v (two backwards, no forward mode)
    jacobian(f, x)    J[i..., j...] = d f_i / d x_j     one backward per output element (vectorize=False)
    hessian(f, x)     the jacobian of the gradient (double backward)
    hvp(f, x, v)      = (f(x), H v);  vhp(f, x, v) = (f(x), v^T H)  (H is symmetric: the same values)

As torch: `inputs` is a Tensor or a tuple of them (results follow that structure), inputs are
detached copies that require grad, an input the function does not use gets zeros (strict=False)
or a RuntimeError (strict=True), and results are detached unless create_graph=True.
"""
from __future__ import annotations

from collections.abc import Callable

from .tensor import Tensor

__all__ = ["hessian", "hvp", "jacobian", "jvp", "vhp", "vjp"]


def _engine():
    """tinyml.autograd, imported at call time: it imports this module (as autograd.functional)."""
    from . import autograd

    return autograd


def _as_tuple(x, what: str) -> tuple[bool, tuple]:
    is_tuple = isinstance(x, (tuple, list))
    items = tuple(x) if is_tuple else (x,)
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise TypeError(f"The {what} given to the function must be a Tensor or a tuple of Tensors, but "
                            f"element {i} is {type(t).__name__}")
    return is_tuple, items


def _prepare(inputs) -> tuple[bool, tuple]:
    is_tuple, items = _as_tuple(inputs, "inputs")
    return is_tuple, tuple(t.detach().requires_grad_(True) for t in items)


def _grad(outputs, inputs, grad_outputs, create_graph: bool, strict: bool, what: str) -> tuple:
    """autograd.grad with unused inputs as zeros (or, with strict, an error naming the input)."""
    outs = [o for o in outputs if o.requires_grad]
    gos = [g for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if not outs:
        grads = (None,) * len(inputs)
    else:
        grads = _engine().grad(outs, inputs, gos, retain_graph=True, create_graph=create_graph,
                              allow_unused=True)
    result = []
    for i, (x, g) in enumerate(zip(inputs, grads)):
        if g is None:
            if strict:
                raise RuntimeError(f"The output of the user-provided function is independent of input {i}. "
                                   f"This is not allowed in strict mode ({what}).")
            g = x.new_zeros(x.shape)
        result.append(g)
    return tuple(result)


def _finish(values, create_graph: bool, is_tuple: bool):
    values = tuple(v if create_graph else v.detach() for v in values)
    return values if is_tuple else values[0]


def vjp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T J): v has the output's shape (may be omitted for a one-element output)."""
    in_tuple, xs = _prepare(inputs)
    with _engine().enable_grad():
        out_tuple, outs = _as_tuple(func(*xs), "outputs of the user-provided function")
        vs = _default_v(v, outs, "vjp")
        grads = _grad(outs, xs, vs, create_graph, strict, "vjp")
    return _finish(outs, create_graph, out_tuple), _finish(grads, create_graph, in_tuple)


def _default_v(v, like: tuple, fn: str) -> tuple:
    if v is None:
        if len(like) != 1 or like[0].numel() != 1:
            raise RuntimeError(f"The vector v can only be None if the user-provided function returns a "
                               f"single Tensor with a single element ({fn}); got shapes "
                               f"{[tuple(o.shape) for o in like]}")
        return (like[0].new_ones(like[0].shape),)
    _, vs = _as_tuple(v, "v")
    if len(vs) != len(like) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(vs, like)):
        raise RuntimeError(f"{fn}: v has shapes {[tuple(a.shape) for a in vs]} but they must match "
                           f"{[tuple(b.shape) for b in like]}")
    return vs


def jvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), J v): v has the inputs' shape (may be omitted for a one-element input)."""
    in_tuple, xs = _prepare(inputs)
    vs = _default_v(v, xs, "jvp")
    with _engine().enable_grad():
        out_tuple, outs = _as_tuple(func(*xs), "outputs of the user-provided function")
        us = tuple(o.new_zeros(o.shape).requires_grad_(True) for o in outs)
        g = _grad(outs, xs, us, True, strict, "jvp")  # J^T u, a linear function of u
        jv = _grad(g, us, vs, create_graph, strict, "jvp")
    return _finish(outs, create_graph, out_tuple), _finish(jv, create_graph, out_tuple)


def jacobian(func: Callable, inputs, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False, strategy: str = "reverse-mode"):
    """J with shape output.shape + input.shape, per (output, input) pair like torch's nesting."""
    if vectorize:
        raise NotImplementedError("jacobian(vectorize=True) is not supported by tinyml; use vectorize=False")
    if strategy != "reverse-mode":
        raise NotImplementedError(f"jacobian strategy {strategy!r} is not supported by tinyml; use "
                                  f"'reverse-mode'")
    from . import ops  # at call time: ops imports autograd, which imports this module

    in_tuple, xs = _prepare(inputs)
    with _engine().enable_grad():
        out_tuple, outs = _as_tuple(func(*xs), "outputs of the user-provided function")
        per_output = []
        for out in outs:
            rows = [[] for _ in xs]
            flat = out.reshape(-1)
            for j in range(flat.numel()):
                onehot = ops.zeros(flat.numel(), dtype=out.dtype, device=out.device)
                onehot[j] = 1.0
                grads = _grad((out,), xs, (onehot.reshape(out.shape),), create_graph, strict, "jacobian")
                for r, g in zip(rows, grads):
                    r.append(g)
            blocks = []
            for x, r in zip(xs, rows):
                block = ops.stack(r) if r else x.new_zeros((0,) + tuple(x.shape))
                blocks.append(block.reshape(tuple(out.shape) + tuple(x.shape)))
            per_output.append(_finish(blocks, create_graph, in_tuple))
    return tuple(per_output) if out_tuple else per_output[0]


def hessian(func: Callable, inputs, create_graph: bool = False, strict: bool = False,
            vectorize: bool = False, outer_jacobian_strategy: str = "reverse-mode"):
    """H with shape input.shape + input.shape (per pair of inputs for a tuple): func returns one element."""
    in_tuple, xs = _prepare(inputs)

    def gradient(*x):
        out_tuple, outs = _as_tuple(func(*x), "outputs of the user-provided function")
        if out_tuple or outs[0].numel() != 1:
            raise RuntimeError(f"The function given to hessian should return a single Tensor with a single "
                               f"element, got shapes {[tuple(o.shape) for o in outs]}")
        grads = _grad(outs, x, (outs[0].new_ones(outs[0].shape),), True, strict, "hessian")
        return grads if in_tuple else grads[0]

    return jacobian(gradient, xs if in_tuple else xs[0], create_graph, strict, vectorize,
                    outer_jacobian_strategy)


def vhp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T H), by double backward."""
    in_tuple, xs = _prepare(inputs)
    vs = _default_v(v, xs, "vhp")
    with _engine().enable_grad():
        out_tuple, outs = _as_tuple(func(*xs), "outputs of the user-provided function")
        if out_tuple or outs[0].numel() != 1:
            raise RuntimeError(f"The function given to vhp/hvp should return a single Tensor with a single "
                               f"element, got shapes {[tuple(o.shape) for o in outs]}")
        g = _grad(outs, xs, (outs[0].new_ones(outs[0].shape),), True, strict, "vhp")
        hv = _grad(g, xs, vs, create_graph, strict, "vhp")
    return _finish(outs, create_graph, False), _finish(hv, create_graph, in_tuple)


def hvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), H v): equal to vhp for the symmetric Hessian of a twice-differentiable function."""
    return vhp(func, inputs, v, create_graph, strict)
