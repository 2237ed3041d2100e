"""`run` for one or two arguments, as plain functions of fixed arity (issue 16, the per-op path).

    run1(name, a)       is run(name, a)
    run2(name, a, b)    is run(name, a, b)

`run(name, *args, **kwargs)` takes any arguments, so CPython builds a tuple and a dict for each
call and cannot specialise the call site; a function with exactly the arguments it is given is
called without either (CPython 3.11's CALL_PY_EXACT_ARGS). The elementwise ops and their
backward formulas call these on their hot path: a cpu tensor `a`, and for run2 a cpu tensor or a
plain value `b` (a Python number), a kernel that returns one array. The kernel is the one `run`
calls, read from the same table (`_cpu_run`: a cpu kernel and the reference behind it, each
inside the profiler's, the step capture's and TINYML_DEBUG's wrappers), so results, profiles and
captures are the same; any other call (another device, a list argument, a kernel not yet in the
table, a result that is not one array) is handed to `run` itself.
"""
from __future__ import annotations

import numpy as np

from ..device import CPU
from ..dtypes import _FROM_NP
from ..tensor import Tensor

_new_object = object.__new__
_ndarray = np.ndarray
# What `run` calls on the cpu device, by kernel name: (first, fallback). `first` is the chain's first
# implementation and `fallback` what runs when it declines; for a cpu kernel with the reference
# behind it, the two functions themselves, so that a call costs no Python frame of the dispatcher's.
_cpu_run: dict = {}


def _run(name: str, *args):
    """backends.run(name, *args): the calls run1 and run2 hand over."""
    from . import run  # backends/__init__.py imports this module
    return run(name, *args)


def _wrapped(out):
    from . import _wrap
    return _wrap(out, CPU)


def run1(name: str, a):
    """run(name, a) for a cpu tensor `a` and an array result; anything else goes through run."""
    if type(a) is Tensor and a.device is CPU:
        pair = _cpu_run.get(name)
        if pair is not None:
            x = a._data
            out = pair[0](x)
            if out is NotImplemented:
                out = pair[1](x)
            if type(out) is _ndarray:
                t = _new_object(Tensor)  # Tensor._make(out, CPU)'s body, as in run
                t._data = out
                t.device = CPU
                t.dtype = _FROM_NP[out.dtype]
                t.requires_grad = False
                t._grad = None
                t.grad_fn = None
                t._output_nr = 0
                t._version = [0]
                t._base = None
                t._hooks = None
                return t
            return _wrapped(out)
    return _run(name, a)


def run2(name: str, a, b):
    """run(name, a, b) for a cpu tensor `a`, a cpu tensor or a plain value `b` and an array result;
    anything else goes through run."""
    if type(a) is Tensor and a.device is CPU:
        kind = type(b)
        if kind is Tensor:
            y = b._data if b.device is CPU else None
        else:
            y = None if kind is list or kind is tuple else b
        pair = _cpu_run.get(name)
        if pair is not None and (y is not None or b is None):
            x = a._data
            out = pair[0](x, y)
            if out is NotImplemented:
                out = pair[1](x, y)
            if type(out) is _ndarray:
                t = _new_object(Tensor)  # Tensor._make(out, CPU)'s body, as in run
                t._data = out
                t.device = CPU
                t.dtype = _FROM_NP[out.dtype]
                t.requires_grad = False
                t._grad = None
                t.grad_fn = None
                t._output_nr = 0
                t._version = [0]
                t._base = None
                t._hooks = None
                return t
            return _wrapped(out)
    return _run(name, a, b)
