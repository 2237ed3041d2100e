"""Reverse-mode autograd: Function with a ctx, an iterative backward, grad modes.

    y = Fn.apply(x)         forward runs with grad off; if any input requires grad, the ctx
                            becomes a graph node: y.grad_fn = ctx, ctx.next_edges = the inputs'
                            nodes (another ctx, or the leaf tensor itself).
    y.backward()            counts each node's consumers over the reachable graph, then runs
                            nodes whose gradients are complete (Kahn's algorithm: a reverse
                            topological order without recursion, so 10k-deep graphs work).

Gradient formulas live in each Function's `backward`; they are ordinary tensor code, run with
grad off (or on, with create_graph=True). Saved tensors carry the version of their storage at
save time; an in-place write before backward raises, as in PyTorch.
"""
from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np

from ._grad_checks import gradient_tuple, root_gradient, run_hooks
from ._saved_output import SavedOutput, save_outputs_by_value

_grad_enabled = True
# Set by tinyml.profiler while it records: called as observer(name) -> context manager around
# each node's backward. None costs one global lookup per node.
_backward_observer = None


def is_grad_enabled() -> bool:
    return _grad_enabled


class _GradModeContext:
    mode = True

    def __enter__(self):
        global _grad_enabled
        self.prev = _grad_enabled
        _grad_enabled = self.mode
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradModeContext):
    """Disable graph recording: `with tinyml.no_grad():` or `@tinyml.no_grad()`."""

    mode = False


class enable_grad(_GradModeContext):
    """Re-enable graph recording inside a no_grad block."""

    mode = True


inference_mode = no_grad


class set_grad_enabled(_GradModeContext):
    """Set grad mode now (as a call) or for a block (as a context manager), like PyTorch."""

    def __init__(self, mode: bool = True):
        global _grad_enabled
        self.mode = bool(mode)
        self.prev = _grad_enabled
        _grad_enabled = self.mode

    def __enter__(self):
        return self

    def __call__(self, fn):
        mode = self.mode
        self.__exit__()

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper


class Context:
    """The `ctx` of a Function call and, when grad is recorded, its node in the graph."""

    __slots__ = ("fn", "needs_input_grad", "next_edges", "_saved", "_freed", "_pre_hooks", "_n_outputs",
                 "materialize_grads", "__dict__")

    def __init__(self, fn, needs_input_grad: tuple = ()):
        self.fn = fn
        self.needs_input_grad = needs_input_grad
        self.next_edges = ()
        self._saved = ()
        self._freed = False
        self._pre_hooks = None  # {output_nr: [hook, ...]} from register_hook on non-leaf outputs
        self._n_outputs = 1
        self.materialize_grads = True

    def save_for_backward(self, *tensors) -> None:
        """Keep tensors (or None) for backward, with their storage version at this moment."""
        self._saved = tuple([None if t is None else (t, t._version[0]) for t in tensors])

    @property
    def saved_tensors(self) -> tuple:
        if self._freed:
            raise RuntimeError(
                f"Trying to backward through the graph of {self.name()} a second time (or to read its saved "
                "tensors after they were freed). Saved tensors are freed after backward; pass "
                "retain_graph=True to the first backward() to keep them.")
        out = []
        for entry in self._saved:
            if entry is None:
                out.append(None)
                continue
            t, version = entry
            if t._version[0] != version:
                raise RuntimeError(
                    f"one of the tensors needed for gradient computation by {self.name()} has been modified "
                    f"by an in-place operation: tensor of shape {tuple(t.shape)} and dtype {t.dtype} is at "
                    f"version {t._version[0]}; expected version {version} instead.")
            out.append(t.unpack(self) if type(t) is SavedOutput else t)
        return tuple(out)

    def mark_non_differentiable(self, *tensors) -> None:
        for t in tensors:
            t.requires_grad = False

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = value

    def name(self) -> str:
        return self.fn.__name__ + "Backward"

    def release(self) -> None:
        self._saved = ()
        self._freed = True
        self.__dict__.clear()

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class Function:
    """Base class of differentiable ops.

    Subclasses define `forward(ctx, *args)` returning a Tensor (or a tuple of Tensors), computed
    through `tinyml.backends` kernels, and `backward(ctx, *grad_outputs)` returning one gradient
    (or None) per forward argument. Call them through `apply`.
    """

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any):
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, *grad_outputs: Any):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        global _grad_enabled
        # The hot path of every op: kept to plain loops and locals (no generators, no helper calls).
        prev = _grad_enabled
        if prev:
            needs = tuple([type(a) is Tensor and a.requires_grad for a in args])
            record = True in needs
            ctx = Context(cls, needs)
        else:
            record = False
            ctx = Context(cls, (False,) * len(args))
        _grad_enabled = False
        try:
            out = cls.forward(ctx, *args, **kwargs)
        finally:
            _grad_enabled = prev
        if not record:
            return out
        ctx.next_edges = tuple([((a.grad_fn, a._output_nr) if a.grad_fn is not None else (a, 0))
                                if n else None for a, n in zip(args, needs)])
        if type(out) is tuple:
            ctx._n_outputs = len(out)
            ctx._output_meta = tuple((o.shape, o.dtype, o.device) for o in out)
            for i, o in enumerate(out):
                _attach(o, ctx, i)
        elif out is not None and out.dtype.category == 2:
            out.requires_grad = True
            out.grad_fn = ctx
            out._output_nr = 0
        if ctx._saved:
            save_outputs_by_value(ctx, out)
        return out


def _attach(t, ctx: Context, i: int) -> None:
    if t is not None and t.dtype.category == 2:
        t.requires_grad = True
        t.grad_fn = ctx
        t._output_nr = i


def _edge(t):
    """Where a gradient for tensor `t` goes: (node, output index), or (leaf tensor, 0)."""
    if t.grad_fn is not None:
        return (t.grad_fn, t._output_nr)
    return (t, 0)


def _exclusively_owned(grad) -> bool:
    """True when `grad` (a cpu tensor) and its array are referenced only by the backward engine's
    buffer: not a view, not an array shared with another tensor, not held anywhere else."""
    arr = grad._data
    # references: the engine's buffer list, the caller's argument, this argument, getrefcount's
    return (grad._base is None and grad.grad_fn is None and type(arr) is np.ndarray and arr.base is None
            and sys.getrefcount(grad) <= 4 and sys.getrefcount(arr) <= 2 and arr.flags.writeable
            and arr.flags.c_contiguous)


def _accumulate_leaf(leaf, grad, create_graph: bool) -> None:
    if grad.shape != leaf.shape:
        raise RuntimeError(f"gradient of shape {tuple(grad.shape)} does not match leaf of shape "
                           f"{tuple(leaf.shape)}")
    if grad.dtype is not leaf.dtype:  # a Function's backward gave another dtype: torch's engine casts it
        grad = grad.to(leaf.dtype)
    if leaf._hooks:
        grad = run_hooks(leaf._hooks, grad)
    if leaf._grad is None:
        # The leaf owns its .grad: never an alias of a gradient that flowed elsewhere too. A fresh
        # gradient nothing else refers to is taken as it is (PyTorch's AccumulateGrad steals a
        # gradient whose use count is 1); anything shared is copied.
        if not create_graph and _exclusively_owned(grad):
            leaf._grad = grad
        else:
            leaf._grad = grad.clone() if create_graph else grad.detach().clone()
    else:
        leaf._grad = leaf._grad + grad if create_graph else (leaf._grad + grad).detach()


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None, create_graph: bool = False,
             inputs=None) -> None:
    """Accumulate d(tensors)/d(leaf) into every reachable leaf's `.grad` (torch.autograd.backward).

    grad_tensors: one gradient per tensor (None: ones, for a scalar), a Tensor of its shape and
    device; another dtype is cast to the tensor's, as torch's engine does (and as it does for a
    gradient a Function's backward returns for a leaf)."""
    global _grad_enabled
    from . import ops

    tensors = (tensors,) if isinstance(tensors, Tensor) else tuple(tensors)
    grad_tensors = gradient_tuple(grad_tensors, len(tensors), Tensor)
    if retain_graph is None:
        retain_graph = create_graph
    only = None if inputs is None else {id(t) for t in ((inputs,) if isinstance(inputs, Tensor) else inputs)}

    roots = []
    for k, (t, g) in enumerate(zip(tensors, grad_tensors)):
        if not t.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn: call "
                               "requires_grad_() on a leaf, or compute the tensor outside tinyml.no_grad()")
        if g is None:
            if t.numel() != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; got shape "
                                   f"{tuple(t.shape)}: pass a gradient of that shape to backward()")
            g = ops.ones_like(t)
        else:
            g = root_gradient(t, g, k)
        roots.append((_edge(t), g))

    # 1. Count, for each node, how many edges reach it (iterative DFS).
    deps: dict = {}
    stack = []
    for (node, _), _ in roots:
        if node not in deps:
            deps[node] = 0
            stack.append(node)
    while stack:
        node = stack.pop()
        if type(node) is Tensor:
            continue
        for e in node.next_edges:
            if e is None:
                continue
            child = e[0]
            if child in deps:
                deps[child] += 1
            else:
                deps[child] = 1
                stack.append(child)

    # 2. Run nodes whose consumers have all delivered their gradients.
    buffers: dict = {}
    for (node, i), g in roots:
        buf = buffers.setdefault(node, [None] * (1 if type(node) is Tensor else node._n_outputs))
        buf[i] = g if buf[i] is None else buf[i] + g
    ready = [node for node in buffers if deps[node] == 0]
    prev, _grad_enabled = _grad_enabled, create_graph
    try:
        while ready:
            node = ready.pop()
            grads = buffers.pop(node)
            if type(node) is Tensor:
                if grads[0] is not None and (only is None or id(node) in only):
                    _accumulate_leaf(node, grads[0], create_graph)
                continue
            if node._pre_hooks:
                for i, hooks in node._pre_hooks.items():
                    if grads[i] is not None:
                        grads[i] = run_hooks(hooks, grads[i])
            single = len(grads) == 1  # the common case: skip the generators below
            if grads[0] is None if single else all(g is None for g in grads):
                in_grads = (None,) * len(node.next_edges)
            else:
                if node._freed:
                    node.saved_tensors  # raises the "backward a second time" error
                if not single and node.materialize_grads and any(g is None for g in grads):
                    meta = node._output_meta
                    grads = [g if g is not None else
                             ops.zeros(meta[i][0], dtype=meta[i][1], device=meta[i][2])
                             for i, g in enumerate(grads)]
                if _backward_observer is None:
                    in_grads = node.fn.backward(node, *grads)
                else:
                    with _backward_observer(node.name()):
                        in_grads = node.fn.backward(node, *grads)
                if type(in_grads) is not tuple:
                    in_grads = (in_grads,)
                if len(in_grads) < len(node.next_edges):
                    raise RuntimeError(f"{node.name()} returned {len(in_grads)} gradients for "
                                       f"{len(node.next_edges)} inputs")
                if not retain_graph:
                    node.release()
            for e, g in zip(node.next_edges, in_grads):
                if e is None:
                    continue
                child, i = e
                if g is not None:
                    buf = buffers.get(child)
                    if buf is None:
                        buf = buffers[child] = [None] * (1 if type(child) is Tensor else child._n_outputs)
                    buf[i] = g if buf[i] is None else buf[i] + g
                else:
                    buffers.setdefault(child, [None] * (1 if type(child) is Tensor else child._n_outputs))
                left = deps[child] - 1
                deps[child] = left
                if not left:
                    ready.append(child)
            in_grads = g = grads = None  # drop the loop's references: a leaf may then own its gradient
    finally:
        _grad_enabled = prev


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False):
    """d(outputs)/d(inputs) without touching `.grad` (torch.autograd.grad)."""
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    saved = [(t, t._grad) for t in inputs]
    for t in inputs:
        t._grad = None
    try:
        backward(outputs, grad_outputs, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)
        result = tuple(t._grad for t in inputs)
    finally:
        for t, g in saved:
            t._grad = g
    if not allow_unused and any(r is None for r in result):
        raise RuntimeError("One of the differentiated tensors was not used in the graph; set "
                           "allow_unused=True")
    return result


from .tensor import Tensor  # noqa: E402  (Tensor needs this module's grad mode; import it last)
