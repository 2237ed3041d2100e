"""Forward outputs saved for backward by value (Function.apply calls save_outputs_by_value).

An op that saves its own output (exp, tanh, sigmoid, softmax) would otherwise hold a tensor whose
grad_fn is the op's ctx, which holds the tensor: a reference cycle per node that only the garbage
collector frees. The ctx keeps a SavedOutput (the array and the version counter) instead, and
`Context.saved_tensors` rebuilds the tensor from it.
"""
from __future__ import annotations


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
