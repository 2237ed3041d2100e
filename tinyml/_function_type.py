"""autograd.Function's metaclass: it tracks whether any Function class has an `apply` other than
Function's own, for the exact-argument applies of tinyml/_apply_exact.py (issue 16).

The profiler, anomaly mode and checkpoint replace `Function.apply` while they run, and a subclass
may define its own. `plain_apply` is True while neither is the case; the exact-argument applies
then do Function.apply's work themselves, and otherwise call `Fn.apply(...)`, so that every such
wrapper still sees every op. The metaclass notes a class body that defines `apply` and every
assignment or deletion of `apply` on a Function class, so the flag costs nothing per op.
"""
from __future__ import annotations

import weakref

plain_apply = True
_root = None  # autograd.Function: the first class made with this metaclass
_root_apply = None  # Function's own apply, as its class body defined it
_own_apply = weakref.WeakSet()  # subclasses given an apply of their own


class FunctionType(type):
    """The metaclass of autograd.Function (and so of every op's Function)."""

    def __init__(cls, name, bases, namespace, **kwargs):
        super().__init__(name, bases, namespace, **kwargs)
        global _root, _root_apply
        if _root is None:
            _root, _root_apply = cls, namespace.get("apply")
        elif "apply" in namespace:
            _note_apply(cls)

    def __setattr__(cls, name, value):
        super().__setattr__(name, value)
        if name == "apply":
            _note_apply(cls)

    def __delattr__(cls, name):
        super().__delattr__(name)
        if name == "apply":
            _note_apply(cls)


def _note_apply(cls) -> None:
    global plain_apply
    if cls is not _root:
        _own_apply.add(cls)
    for c in [c for c in _own_apply if "apply" not in c.__dict__]:
        _own_apply.discard(c)
    plain_apply = _root.__dict__.get("apply") is _root_apply and not len(_own_apply)
