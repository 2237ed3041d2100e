"""Forward outputs saved for backward by value (Function.apply calls save_outputs_by_value).

An op that saves its own output (exp, tanh, sigmoid, softmax) would otherwise hold a tensor whose
grad_fn is the op's ctx, which holds the tensor: a reference cycle per node that only the garbage
collector frees. The ctx keeps a SavedOutput (the array and the version counter) instead, and
`Context.saved_tensors` rebuilds the tensor from it.

Backward formulas with grad off read their saved tensors through `saved_one` / `saved_two`: what
`ctx.saved_tensors` returns for a node that saved one or two entries, with the same errors, in a
plain call (a property runs its getter from C, in a Python frame of its own: about twice the cost).
"""
from __future__ import annotations

_new_object = object.__new__


class SavedOutput:
    """A forward output kept as its array and version counter. `unpack` rebuilds the tensor with
    its grad_fn, so formulas using it are differentiated through this node again under
    create_graph=True."""

    __slots__ = ("_data", "device", "dtype", "_version", "output_nr", "_tensor_type")
    _base = None

    def __init__(self, t, output_nr: int):
        self._data, self.device, self.dtype, self._version = t._data, t.device, t.dtype, t._version
        self.output_nr = output_nr
        self._tensor_type = type(t)  # Tensor: not importable here, this module loads before tensor.py

    @property
    def shape(self):
        return self._data.shape

    @property
    def nbytes(self) -> int:
        return self._tensor_type._make(self._data, self.device).nbytes

    def unpack(self, ctx):
        """The output again, as a tensor whose grad_fn is `ctx` (this node)."""
        t = self._tensor_type._make(self._data, self.device)
        t._version = self._version
        t.requires_grad, t.grad_fn, t._output_nr = True, ctx, self.output_nr
        return t


def saved_output(t, output_nr: int) -> SavedOutput:
    """SavedOutput(t, output_nr), made without a call of the class (a forward saving its own output
    does this once per op)."""
    s = _new_object(SavedOutput)
    s._data, s.device, s.dtype, s._version = t._data, t.device, t.dtype, t._version
    s.output_nr = output_nr
    s._tensor_type = type(t)
    return s


def _unpacked(entry, ctx):
    """The tensor of one saved entry (t, version) of ctx, or None when the version moved on (the
    caller then reads ctx.saved_tensors, which raises the in-place error)."""
    t, version = entry
    if t._version[0] != version:
        return None
    if type(t) is not SavedOutput:
        return t
    out = _new_object(t._tensor_type)  # SavedOutput.unpack and Tensor._make's body, inlined
    out._data = t._data
    out.device = t.device
    out.dtype = t.dtype
    out.requires_grad = True
    out._grad = None
    out.grad_fn = ctx
    out._output_nr = t.output_nr
    out._version = t._version
    out._base = None
    out._hooks = None
    return out


def saved_one(ctx):
    """`ctx.saved_tensors[0]` for a node that saved one entry (a tensor, its own output or None)."""
    saved = ctx._saved  # a plain tuple, or a stand-in that computes it (tinyml.utils.checkpoint)
    if type(saved) is tuple and len(saved) == 1 and not ctx._freed:
        entry = saved[0]
        if entry is None:
            return None
        t = _unpacked(entry, ctx)
        if t is not None:
            return t
    return ctx.saved_tensors[0]  # freed, modified in place (its error), or not a plain tuple


def saved_two(ctx) -> tuple:
    """`ctx.saved_tensors` for a node that saved two entries."""
    saved = ctx._saved
    if type(saved) is tuple and len(saved) == 2 and not ctx._freed:
        a, b = saved
        a = a if a is None else _unpacked(a, ctx)
        b = b if b is None else _unpacked(b, ctx)
        if (a is not None or saved[0] is None) and (b is not None or saved[1] is None):
            return a, b
    return ctx.saved_tensors  # freed, modified in place (its error), or not a plain tuple


def save_outputs_by_value(ctx, out) -> None:
    """Replace each saved entry of ctx that is one of its own outputs by a SavedOutput."""
    outs = out if type(out) is tuple else (out,)
    saved = list(ctx._saved)
    for k, e in enumerate(saved):
        if e is None:
            continue
        for i, o in enumerate(outs):
            if e[0] is o:
                saved[k] = (SavedOutput(o, i), e[1])
    ctx._saved = tuple(saved)
