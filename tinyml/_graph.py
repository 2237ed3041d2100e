"""The autograd graph's data: `Context`, a Function call's ctx and, once recorded, its node; `Edge`,
where a gradient goes from a node (to another node's output, or to a leaf tensor).

    loss.grad_fn                    a Context: fn (the Function), saved tensors, next_edges
    loss.grad_fn.next_edges[k]      Edge((node, output_nr)) for input k, or None (no gradient)

tinyml/autograd.py records these in Function.apply and walks them in backward.
"""
from __future__ import annotations

from operator import itemgetter

from ._saved_output import SavedOutput


class Context:
    """The `ctx` of a Function call and, when grad is recorded, its node in the graph: `fn` is the
    Function, `next_edges` one Edge (or None) per forward argument, `_saved` the saved tensors."""

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
