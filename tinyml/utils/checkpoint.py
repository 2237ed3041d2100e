"""Activation checkpointing (torch.utils.checkpoint.checkpoint, use_reentrant=False semantics):
keep a block's graph but not the activations it saved; recompute them in backward.

    y = checkpoint(block, x, use_reentrant=False)     # same y, same gradients, less memory held

How: the forward runs normally (grad recorded), collecting the graph nodes it creates; each
node's saved tensors are then dropped and replaced by a placeholder. The first time backward
reads any of them, the block runs again (grad on, the RNG state of the first run restored, so
dropout draws the same mask) and node i of the original run takes the saved tensors of node i
of the recomputation. Gradients reach everything the block used (its inputs and the parameters
it closes over), torch.autograd.grad works through it, and the inputs need not require grad:
this is the non-reentrant variant. use_reentrant=True is accepted and runs the same code.
Tensors an op keeps as ctx attributes rather than through save_for_backward stay held.
"""
from __future__ import annotations

from collections.abc import Callable

from .. import autograd
from .. import random as _random

__all__ = ["checkpoint"]


class _Frame:
    """One checkpointed call: how to run it again, and the saved tensors of its recomputation."""

    def __init__(self, fn: Callable, args: tuple, kwargs: dict, rng_state) -> None:
        self.fn, self.args, self.kwargs, self.rng_state = fn, args, kwargs, rng_state
        self.n_nodes = 0
        self.recomputed: list | None = None

    def saved(self, index: int) -> tuple:
        if self.recomputed is None:
            outer_state = _random.get_rng_state() if self.rng_state is not None else None
            if self.rng_state is not None:
                _random.set_rng_state(self.rng_state)
            try:
                with autograd.enable_grad():
                    nodes = _run_collecting(self.fn, self.args, self.kwargs)[1]
            finally:
                if outer_state is not None:
                    _random.set_rng_state(outer_state)
            if len(nodes) != self.n_nodes:
                raise RuntimeError(f"checkpoint: the recomputation recorded {len(nodes)} ops but the "
                                   f"original forward recorded {self.n_nodes}; the checkpointed function "
                                   "must run the same ops each time (no control flow on random values)")
            self.recomputed = [n._saved for n in nodes]
            self.fn = self.args = self.kwargs = None  # the recomputation's graph now owns what it needs
        return self.recomputed[index]


class _Recompute(tuple):
    """Stands in a node's `_saved` (a tuple of (tensor, version) entries, of the same length):
    iterating it recomputes the frame once and yields the recomputed entries."""

    def __new__(cls, n: int, frame: _Frame, index: int):
        obj = super().__new__(cls, (None,) * n)
        obj.frame, obj.index = frame, index
        return obj

    def __iter__(self):
        return iter(self.frame.saved(self.index))


def _run_collecting(fn: Callable, args: tuple, kwargs: dict):
    """fn(*args, **kwargs) with every graph node it records collected, in creation order."""
    nodes: list = []
    orig = autograd.Function.__dict__["apply"]
    inner = orig.__func__

    def apply(cls, *a, **kw):
        out = inner(cls, *a, **kw)
        for o in out if type(out) is tuple else (out,):
            node = getattr(o, "grad_fn", None)
            if any(o is x for x in a):
                continue  # an op that returned its input recorded no node of its own
            if node is not None and (not nodes or nodes[-1] is not node):
                nodes.append(node)
        return out

    autograd.Function.apply = classmethod(apply)
    try:
        out = fn(*args, **kwargs)
    finally:
        autograd.Function.apply = orig
    return out, nodes


def checkpoint(function: Callable, *args, use_reentrant: bool | None = None, preserve_rng_state: bool = True,
               determinism_check: str = "default", debug: bool = False, **kwargs):
    """function(*args, **kwargs), holding none of the activations its ops saved for backward until
    backward recomputes them."""
    if determinism_check not in ("default", "none"):
        raise ValueError(f"determinism_check should be 'default' or 'none', got {determinism_check!r}")
    if not autograd.is_grad_enabled():
        return function(*args, **kwargs)  # nothing is recorded, so nothing to drop
    rng_state = _random.get_rng_state() if preserve_rng_state else None
    out, nodes = _run_collecting(function, args, kwargs)
    frame = _Frame(function, args, kwargs, rng_state)
    frame.n_nodes = len(nodes)
    for i, node in enumerate(nodes):
        if node._saved:
            node._saved = _Recompute(len(node._saved), frame, i)
    return out
