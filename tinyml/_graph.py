"""The autograd graph's data: `Context`, a Function call's ctx and, once recorded, its node; `Edge`,
where a gradient goes from a node (to another node's output, or to a leaf tensor).

    loss.grad_fn                    a Context: fn (the Function), saved tensors, next_edges
    loss.grad_fn.next_edges[k]      Edge((node, output_nr)) for input k, or None (no gradient)
    loss.grad_fn.next_functions     the same as torch shows them: (node | AccumulateGrad | None, output_nr)

    DelayedError                    the op of a node that raises when differentiated: after each
                                    gradient a once-differentiable backward returns under create_graph
    Adjoint                         the op of a node after a linear op's kernel gradient L^T g under
                                    create_graph: its backward applies the op (L) again

tinyml/autograd.py records these in Function.apply and walks them in backward.
"""
from __future__ import annotations

from operator import itemgetter

from ._saved_output import SavedOutput


class Context:
    """The `ctx` of a Function call and, when grad is recorded, its node in the graph: `fn` is the
    Function, `next_edges` one Edge (or None) per forward argument, `_saved` the saved tensors."""

    # Only what every node sets lives in slots; the rest are class defaults that an instance
    # overrides in its __dict__ when it differs, so that Function.apply makes a ctx with
    # object.__new__ and three stores (this runs once per op, forward and backward).
    __slots__ = ("fn", "needs_input_grad", "next_edges", "__dict__")
    _saved = ()
    _freed = False
    _pre_hooks = None  # {output_nr: [hook, ...]} from register_hook on non-leaf outputs
    _n_outputs = 1
    materialize_grads = True

    def __init__(self, fn, needs_input_grad: tuple = ()):
        self.fn = fn
        self.needs_input_grad = needs_input_grad
        self.next_edges = ()

    def save_for_backward(self, *tensors) -> None:
        """Keep tensors (or None) for backward, with their storage version at this moment."""
        n = len(tensors)
        if n == 1:  # the common cases, without a comprehension (once per op)
            a = tensors[0]
            self._saved = (None if a is None else (a, a._version[0]),)
        elif n == 2:
            a, b = tensors
            self._saved = (None if a is None else (a, a._version[0]),
                           None if b is None else (b, b._version[0]))
        else:
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
            out.append(t if type(t) is not SavedOutput else t.unpack(self))
        return tuple(out)

    def mark_non_differentiable(self, *tensors) -> None:
        for t in tensors:
            t.requires_grad = False

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = value

    def name(self) -> str:
        return self.fn.__name__ + "Backward"

    def release(self) -> None:
        """Free what forward kept (saved tensors, attributes set on ctx); the node's structure
        (output count, hooks, materialize_grads) stays, so a second backward gets the clear error."""
        n_outputs, pre_hooks, materialize = self._n_outputs, self._pre_hooks, self.materialize_grads
        self.__dict__.clear()
        self._freed = True
        if n_outputs != 1:
            self._n_outputs = n_outputs
        if pre_hooks is not None:
            self._pre_hooks = pre_hooks
        if not materialize:
            self.materialize_grads = False

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class Edge(tuple):
    """Where a gradient goes: output `output_nr` of `node`, a Context (the node that produced the
    tensor), or a leaf Tensor (output_nr 0), whose `.grad` accumulates it.

    Built as `Edge((node, output_nr))`: a tuple subclass with named fields, so that making one
    (once per recorded input of every op) costs a C-level tuple copy, half a NamedTuple's call."""

    __slots__ = ()
    node = property(itemgetter(0), doc="the Context or leaf Tensor the gradient goes to")
    output_nr = property(itemgetter(1), doc="which output of node (0 for a leaf)")

    def __repr__(self) -> str:
        return f"Edge(node={self[0]!r}, output_nr={self[1]!r})"


class DelayedError:
    """The op of a node that raises when it is differentiated (PyTorch's DelayedError).

    Under create_graph=True the engine puts one after each gradient that a once-differentiable
    backward (`Function.once_differentiable`: a fused kernel, no tensor formula) returns, when the
    true gradient depends on a tensor that requires grad. The gradient then joins the graph, with
    an edge to each tensor it depends on, and differentiating it again raises the node's message:
    never a second derivative that silently treats the gradient as a constant."""

    once_differentiable = None

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError(ctx.message)


def delayed_error(grad, message: str, depends: list):
    """`grad` (a tensor with no graph) as a new tensor over the same storage whose grad_fn is a
    DelayedError node raising `message`, with one edge to each tensor of `depends`."""
    node = Context(DelayedError, (True,) * len(depends))
    node.next_edges = tuple([Edge((t.grad_fn, t._output_nr)) if t.grad_fn is not None else Edge((t, 0))
                             for t in depends])
    node.message = message
    out = grad.detach()
    out.requires_grad, out.grad_fn, out._output_nr = True, node, 0
    return out


class Adjoint:
    """The op of the node that makes a linear op's kernel gradient differentiable (`adjoint`).

    For y = L x (a slice, an index, a pool, an upsample), the fused backward kernel computes
    dx = L^T g, linear in g and independent of x: its derivative with respect to g is L itself,
    so the node's backward runs the op forward again on the incoming gradient (recording a graph
    of its own under create_graph=True: derivatives of any order)."""

    once_differentiable = None

    @staticmethod
    def backward(ctx, gg):
        op, args = ctx.op
        return op(gg, *args)


def adjoint(g, grad, op, *args):
    """`grad` = L^T g (a kernel's result, no graph) as a differentiable function of `g`, when g
    requires grad: a node whose backward is `op(gg, *args)` = L gg, with one edge to g."""
    if not g.requires_grad:
        return grad
    node = Context(Adjoint, (True,))
    node.next_edges = (Edge((g.grad_fn, g._output_nr)) if g.grad_fn is not None else Edge((g, 0)),)
    node.op = (op, args)
    grad.requires_grad, grad.grad_fn, grad._output_nr = True, node, 0
    return grad


class AccumulateGrad:
    """What `grad_fn.next_functions` shows for an edge into a leaf (torch's AccumulateGrad node):
    `variable` is the leaf whose `.grad` the gradient accumulates into."""

    __slots__ = ("variable",)

    def __init__(self, variable) -> None:
        self.variable = variable

    next_functions = ()

    def name(self) -> str:
        return "AccumulateGrad"

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


def _next_functions(self) -> tuple:
    """((node, output_nr), ...) per forward input, as torch's grad_fn.next_functions: (None, 0) for an
    input that needs no gradient, (AccumulateGrad, 0) for a leaf."""
    return tuple([(None, 0) if e is None else
                  (AccumulateGrad(e[0]) if not isinstance(e[0], Context) else e[0], e[1])
                  for e in self.next_edges])


Context.next_functions = property(_next_functions)
