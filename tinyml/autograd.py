"""Reverse-mode autograd: Function with a ctx, an iterative backward, grad modes.

    y = Fn.apply(x)         forward runs with grad off; if any input requires grad, the ctx
                            becomes a graph node: y.grad_fn = ctx, ctx.next_edges = one Edge per
                            input (to another ctx's output, or to the leaf tensor itself).
    y.backward()            backward() in three named steps: count_consumers over the reachable
                            graph, then Kahn's algorithm (a reverse topological order without
                            recursion, so 10k-deep graphs work): run_node on each node whose
                            gradients are complete, deliver_gradients along its edges (for the
                            common node both in one call, _backward_steps.run_and_deliver).

Gradient formulas live in each Function's `backward`; they are ordinary tensor code, run with
grad off (or on, with create_graph=True). Saved tensors carry the version of their storage at
save time; an in-place write before backward raises, as in PyTorch. The engine makes tensors
only through Tensor methods (`new_ones`, `+`, `clone`, `to`) and, to sum two gradients of one
dtype and shape, the `add` kernel itself (`backends.run`), so it imports no op."""
from __future__ import annotations

import functools
from typing import Any

from ._backward_steps import _new_buffer, count_consumers, edge_to, root_gradients  # noqa: F401  (edge_to)
from ._backward_steps import run_and_deliver as _run_and_deliver
from ._function_type import FunctionType
from ._grad_checks import run_hooks
from ._graph import Context, Edge, delayed_error
from ._leaf_grad import _accumulate_leaf
from ._saved_output import SavedOutput, save_outputs_by_value, saved_output  # noqa: F401  (autograd.SavedOutput)
from .backends import run
from .tensor import Tensor

_grad_enabled = True
# Set by tinyml.profiler while it records: observer(name) -> context manager around each node's backward
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


class Function(metaclass=FunctionType):  # the metaclass: tinyml/_function_type.py
    """Base class of differentiable ops.

    Subclasses define `forward(ctx, *args)` returning a Tensor (or a tuple of Tensors), computed
    through `tinyml.backends` kernels, and `backward(ctx, *grad_outputs)` returning one gradient
    (or None) per forward argument. Call them through `apply`.

    `once_differentiable`: set, to the name of the fused kernel it runs, on a Function whose
    backward has no differentiable tensor formula. Under create_graph=True the engine then runs
    that backward with grad off and marks its gradients so that differentiating them raises,
    naming the op (`backward_once_differentiable`), as PyTorch's @once_differentiable does.
    """

    once_differentiable: str | bool | None = None

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any):
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, *grad_outputs: Any):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        global _grad_enabled
        # The hot path of every op, forward and backward: plain code for one to three arguments (no
        # comprehensions, no helper calls, no star call of forward: it costs twice a plain call), a
        # ctx made without calling Context.__init__.
        ctx = _new_object(Context)
        ctx.fn = cls
        ctx.next_edges = ()
        n = len(args)
        if not _grad_enabled:  # nothing records (no_grad, or a backward formula): grad is off already
            ctx.needs_input_grad = _NO_NEEDS[n] if n < 8 else (False,) * n
            if n == 2 and not kwargs:
                return cls.forward(ctx, args[0], args[1])
            return cls.forward(ctx, args[0]) if n == 1 and not kwargs else cls.forward(ctx, *args, **kwargs)
        if n == 2:
            a, b = args
            needs = (type(a) is Tensor and a.requires_grad, type(b) is Tensor and b.requires_grad)
        elif n == 1:
            a = args[0]
            needs = (type(a) is Tensor and a.requires_grad,)
        elif n == 3:  # two operands and a flag (maximum, remainder, log's base ...)
            a, b, c = args
            needs = (type(a) is Tensor and a.requires_grad, type(b) is Tensor and b.requires_grad,
                     type(c) is Tensor and c.requires_grad)
        else:
            needs = tuple([type(a) is Tensor and a.requires_grad for a in args])
        ctx.needs_input_grad = needs
        _grad_enabled = False
        try:
            out = (cls.forward(ctx, a, b) if n == 2 and not kwargs else
                   cls.forward(ctx, a) if n == 1 and not kwargs else
                   cls.forward(ctx, a, b, c) if n == 3 and not kwargs else cls.forward(ctx, *args, **kwargs))
        finally:
            _grad_enabled = True
        if True not in needs:
            return out
        if n == 2:  # one edge per argument: edge_to(a) where a needs a gradient, else None (inlined)
            ctx.next_edges = (
                ((Edge((a.grad_fn, a._output_nr)) if a.grad_fn is not None else Edge((a, 0)))
                 if needs[0] else None),
                ((Edge((b.grad_fn, b._output_nr)) if b.grad_fn is not None else Edge((b, 0)))
                 if needs[1] else None))
        elif n == 1:
            ctx.next_edges = (Edge((a.grad_fn, a._output_nr)) if a.grad_fn is not None else Edge((a, 0)),)
        elif n == 3 and not needs[2]:
            ctx.next_edges = (
                ((Edge((a.grad_fn, a._output_nr)) if a.grad_fn is not None else Edge((a, 0)))
                 if needs[0] else None),
                ((Edge((b.grad_fn, b._output_nr)) if b.grad_fn is not None else Edge((b, 0)))
                 if needs[1] else None), None)
        else:
            ctx.next_edges = tuple([((Edge((a.grad_fn, a._output_nr)) if a.grad_fn is not None
                                      else Edge((a, 0))) if need else None) for a, need in zip(args, needs)])
        saved = ctx._saved
        if type(out) is tuple:
            ctx._n_outputs = len(out)
            ctx._output_meta = tuple((o.shape, o.dtype, o.device) for o in out)
            for i, o in enumerate(out):
                _attach(o, ctx, i)
            if saved:
                save_outputs_by_value(ctx, out)
        elif out is not None:
            if out.dtype.is_differentiable:
                out.requires_grad, out.grad_fn, out._output_nr = True, ctx, 0
            for entry in saved:  # an op that saved its own output keeps it by value (no cycle)
                if entry is not None and entry[0] is out:
                    ctx._saved = ((saved_output(out, 0), entry[1]),) if len(saved) == 1 else tuple(
                        [(saved_output(out, 0), e[1]) if e is not None and e[0] is out else e for e in saved])
                    break
        return out


_new_object = object.__new__
_NO_NEEDS = tuple((False,) * n for n in range(8))  # needs_input_grad when nothing records


def _attach(t, ctx: Context, i: int) -> None:
    if t is not None and t.dtype.is_differentiable:
        t.requires_grad, t.grad_fn, t._output_nr = True, ctx, i


def run_node(node: Context, grads: list, retain_graph: bool) -> tuple:
    """Step 2. One node's backward on its complete output gradients: the node's pre-hooks, zeros
    for outputs that got none (multi-output nodes, `Context.materialize_grads`), then
    `node.fn.backward(node, *grads)`. Returns one gradient (or None) per edge, and frees the
    node's saved tensors unless retain_graph."""
    if node._pre_hooks:
        for i, hooks in node._pre_hooks.items():
            if grads[i] is not None:
                grads[i] = run_hooks(hooks, grads[i])
    single = len(grads) == 1  # the common case: skip the generators below
    if grads[0] is None if single else all(g is None for g in grads):
        return (None,) * len(node.next_edges)
    if node._freed:
        node.saved_tensors  # raises the "backward a second time" error
    if not single and node.materialize_grads and any(g is None for g in grads):
        like = next(g for g in grads if g is not None)
        grads = [g if g is not None else like.new_zeros(shape, dtype=dtype, device=device)
                 for g, (shape, dtype, device) in zip(grads, node._output_meta)]
    # create_graph through a kernel-only backward (getattr: not every node's fn is a Function)
    once = _grad_enabled and getattr(node.fn, "once_differentiable", None)
    if _backward_observer is None:
        in_grads = backward_once_differentiable(node, grads) if once else node.fn.backward(node, *grads)
    else:
        with _backward_observer(node.name()):
            in_grads = backward_once_differentiable(node, grads) if once else node.fn.backward(node, *grads)
    if type(in_grads) is not tuple:
        in_grads = (in_grads,)
    if len(in_grads) < len(node.next_edges):
        raise RuntimeError(f"{node.name()} returned {len(in_grads)} gradients for {len(node.next_edges)} "
                           f"inputs")
    if not retain_graph:
        node.release()
    return in_grads


def backward_once_differentiable(node: Context, grads: list) -> tuple:
    """A once-differentiable node's backward under create_graph=True: run with grad off; when the
    true gradient depends on a tensor that requires grad (an incoming gradient, a saved tensor),
    each gradient gets a DelayedError node (tinyml/_graph.py), which raises if differentiated."""
    global _grad_enabled
    depends = [g for g in grads if g is not None and g.requires_grad]
    depends += [t for t in node.saved_tensors if t is not None and t.requires_grad]
    prev, _grad_enabled = _grad_enabled, False
    try:
        in_grads = node.fn.backward(node, *grads)
    finally:
        _grad_enabled = prev
    if not depends:
        return in_grads
    kernel = node.fn.once_differentiable
    if isinstance(kernel, str):
        why, op = f"it runs the fused kernel {kernel}", kernel.removesuffix("_backward")
    else:
        why, op = "it is marked once_differentiable", node.fn.__name__
    message = f"the backward of {node.name()} is not differentiable ({why}); double backward through {op} " \
              "is not supported"
    in_grads = in_grads if type(in_grads) is tuple else (in_grads,)
    return tuple([g if g is None else delayed_error(g, message, depends) for g in in_grads])


def deliver_gradients(edges: tuple, in_grads: tuple, buffers: dict, consumers: dict, ready: list) -> None:
    """Step 3. Add each gradient into the buffer slot its edge points at (summing gradients that
    meet there); a node whose last consumer has now delivered goes on the ready stack."""
    for edge, g in zip(edges, in_grads):
        if edge is None:
            continue
        child, i = edge
        buf = buffers.get(child)
        if buf is None:  # _new_buffer(child), inlined
            buf = buffers[child] = [None] * (1 if type(child) is Tensor else child._n_outputs)
        if g is not None:
            have = buf[i]
            if have is None:
                buf[i] = g
            elif not _grad_enabled and have.dtype is g.dtype and have._data.shape == g._data.shape:
                buf[i] = run("add", have, g)  # what `have + g` runs here, without its promotion and node
            else:
                buf[i] = have + g
        left = consumers[child] - 1
        consumers[child] = left
        if not left:
            ready.append(child)


_run_node, _deliver_gradients = run_node, deliver_gradients  # as defined here, before anyone wraps them


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None, create_graph: bool = False,
             inputs=None) -> None:
    """Accumulate d(tensors)/d(leaf) into every reachable leaf's `.grad` (torch.autograd.backward).

    grad_tensors: one gradient per tensor (None: ones, for a scalar), a Tensor of its shape and
    device; another dtype is cast to the tensor's, as torch's engine does (and as it does for a
    gradient a Function's backward returns for a leaf). Grad mode is `create_graph` meanwhile."""
    global _grad_enabled
    tensors = (tensors,) if isinstance(tensors, Tensor) else tuple(tensors)
    if retain_graph is None:
        retain_graph = create_graph
    only = None if inputs is None else {id(t) for t in ((inputs,) if isinstance(inputs, Tensor) else inputs)}
    roots = root_gradients(tensors, grad_tensors)
    consumers = count_consumers([edge.node for edge, _ in roots])
    buffers: dict = {}  # node -> its gradient slots (_new_buffer), filled by its consumers
    for (node, i), g in roots:
        buf = buffers.setdefault(node, _new_buffer(node))
        buf[i] = g if buf[i] is None else buf[i] + g
    roots = g = None
    ready = [node for node in buffers if consumers[node] == 0]
    # The common node (one output, no hooks, first-order) runs run_node + deliver_gradients in one
    # call, unless something watches each node: anomaly mode (or a test) wraps the module's steps,
    # the profiler times each node.
    inline = (not create_graph and _backward_observer is None and run_node is _run_node
              and deliver_gradients is _deliver_gradients)
    prev, _grad_enabled = _grad_enabled, create_graph
    try:
        while ready:  # Kahn's algorithm: a node is ready once every consumer has delivered
            node = ready.pop()
            grads = buffers.pop(node)
            if type(grads) is Tensor:  # run_and_deliver's entry for a one-output, one-consumer child
                if type(node) is Tensor:
                    if only is None or id(node) in only:
                        _accumulate_leaf(node, grads, create_graph)
                    continue
                if node._pre_hooks is None and not node._freed:
                    _run_and_deliver(node, grads, retain_graph, buffers, consumers, ready)
                    continue
                grads = [grads]
            if type(node) is Tensor:
                if grads[0] is not None and (only is None or id(node) in only):
                    _accumulate_leaf(node, grads[0], create_graph)
                continue
            if inline and len(grads) == 1 and grads[0] is not None and node._pre_hooks is None \
                    and not node._freed:
                _run_and_deliver(node, grads.pop(), retain_graph, buffers, consumers, ready)
                continue
            in_grads = run_node(node, grads, retain_graph)
            grads = None
            deliver_gradients(node.next_edges, in_grads, buffers, consumers, ready)
            in_grads = None  # drop the loop's reference: a leaf may then own its gradient
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


def zero_grad(tensors, set_to_none: bool = True) -> None:
    """Reset each tensor's `.grad` (Module.zero_grad, Optimizer.zero_grad): to None, PyTorch's
    default, or (set_to_none=False) to zeros in place, detached from any graph first."""
    for p in tensors:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            with no_grad():
                p.grad = p.grad.detach()
                p.grad.zero_()

from . import autograd_functional as functional  # noqa: E402, F401  (uses grad above; `autograd.functional`)
from ._anomaly import detect_anomaly, set_detect_anomaly  # noqa: E402, F401
from ._autograd_profiler import autograd_getattr as __getattr__  # noqa: E402, F401  (autograd.profiler)
