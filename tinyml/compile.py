"""`tinyml.compile(fn)`: record the kernels a function runs, then replay them without the Python
that chose them (as tinygrad's TinyJit and CUDA graphs do). docs/compile.md explains it.

    step = tinyml.compile(step)          # or @tinyml.compile above `def step(x, y): ...`
    for x, y in batches:
        loss = step(x, y)                # calls 1-2 run eagerly and record; then replays

A training step is forward + backward (+ optimizer): every computation in it is a dispatched
kernel (tinyml/backends), so a step is a fixed sequence of kernel calls whose array arguments
are the step's inputs, the outputs of earlier calls, persistent buffers (parameters, optimizer
state) or constants. Two eager calls are recorded (tinyml/_capture_record.py); when they agree
kernel for kernel, the second becomes a straight-line replay (tinyml/_capture_program.py) that
later calls run instead of `fn`. Optimizer and LR-scheduler `step`s and `zero_grad` inside `fn`
are Python state machines (step counts, learning rates): a replay runs them eagerly, in place.

A replay is used only for calls that look like the recorded ones (the guards): the same
structure of arguments with the same shapes, dtypes, devices and strides of every tensor and
the same non-tensor values, the same grad mode, the same kernel registry (a registered kernel,
force_reference or the profiler makes it record again), the same parameter arrays (each leaf
that received a gradient still holds its array and still requires grad) and every module called
in the same train/eval mode. Anything else records again. A function that cannot be captured
(a number or an array computed in Python each call: dropout's random mask, Adam's step count
outside an optimizer, a value read with .item() that feeds a kernel) runs eagerly from then on;
`warnings.warn` says why, once, and
`compiled.explain()` tells it too.

The replay returns new tensors over the replayed arrays (detached: a captured step's graph is
not kept) and assigns the leaves' new `.grad`s. Python side effects of `fn` other than the ones
above do not happen in a replay (prints, counters), and Python state read by fn that is not
guarded (a module attribute holding a number) is read at recording: call `compiled.reset()`
after changing such state between calls.
"""
from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

from . import _capture_record, backends
from ._capture_program import Program, _same_value, build_program
from ._capture_record import DISPATCH_MARK, Recorder, Unsupported
from .autograd import is_grad_enabled
from .tensor import Tensor

__all__ = ["compile", "CompiledFunction"]


def _flatten(obj, tensors: list):
    """A hashable description of `obj` (a nest of tuples, lists and dicts) with each Tensor replaced
    by its shape, dtype, device, strides and requires_grad; the tensors are appended to `tensors`."""
    kind = type(obj)
    if kind is Tensor:
        tensors.append(obj)
        a = obj._data
        return ("T", a.shape, a.dtype, obj.device, getattr(a, "strides", None), obj.requires_grad)
    if kind is tuple or kind is list:
        return (kind, tuple([_flatten(x, tensors) for x in obj]))
    if kind is dict:
        return (dict, tuple([(k, _flatten(v, tensors)) for k, v in obj.items()]))
    try:
        hash(obj)
    except TypeError:
        return ("id", id(obj))  # an unhashable object: the same object records once
    return ("V", kind, obj)


class _Result:
    """What fn returned, with each tensor replaced by where its replay comes from."""

    def __init__(self, out, rec: Recorder, inputs: list):
        self.tensors: list = []  # ("input", k) | ("object", tensor) | ("array", device)
        self.descs: list = []  # the recorder's desc of each ("array") tensor's data
        self.objects: list = []
        where = {id(t): k for k, t in enumerate(inputs)}
        self.template = self._walk(out, rec, where)

    def _walk(self, obj, rec, where):
        kind = type(obj)
        if kind is Tensor:
            fn = obj.grad_fn
            if fn is not None and not getattr(fn, "_freed", True):
                raise Unsupported("the function returns a tensor that is still part of an autograd graph: "
                                  "compile a whole step (call .backward() inside it) or a no_grad function")
            self.objects.append(obj)
            if id(obj) in where:
                self.tensors.append(("input", where[id(obj)]))
            else:
                self.tensors.append(("array", obj.device))
                self.descs.append(rec.describe(obj._data, f"returned tensor {len(self.tensors) - 1}"))
            return _Leaf(len(self.tensors) - 1)
        if kind is tuple or kind is list:
            return kind([self._walk(x, rec, where) for x in obj])
        if kind is dict:
            return {k: self._walk(v, rec, where) for k, v in obj.items()}
        return obj

    def matches(self, other: _Result) -> bool:
        """Same structure, same Python values, tensors from the same places."""
        return _same_template(self.template, other.template) and \
            [t[0] for t in self.tensors] == [t[0] for t in other.tensors] and \
            all(a == b for a, b in zip(self.tensors, other.tensors) if a[0] == "input")


class _Leaf:
    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


def _same_template(a, b) -> bool:
    if type(a) is _Leaf or type(b) is _Leaf:
        return type(a) is type(b) and a.index == b.index
    if type(a) in (tuple, list) and type(a) is type(b):
        return len(a) == len(b) and all(_same_template(x, y) for x, y in zip(a, b))
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(_same_template(a[k], b[k]) for k in a)
    return _same_value(a, b)


def _rebuild(template, tensors: list):
    kind = type(template)
    if kind is _Leaf:
        return tensors[template.index]
    if kind is tuple or kind is list:
        return kind([_rebuild(x, tensors) for x in template])
    if kind is dict:
        return {k: _rebuild(v, tensors) for k, v in template.items()}
    return template


def _keep_awake():
    """backends/cpu's keep_awake() block (csrc/keep_awake.cpp): while a replay runs, idle CPUs spin at
    the lowest priority instead of halting, so the OpenMP threads' wake-ups are quick. Imported here
    (the documented last resort): the cpu backend imports from the tinyml package, whose __init__
    imports this module; a replay follows a recording, whose cpu dispatch loaded the backend."""
    from .backends.cpu import keep_awake

    return keep_awake()


class _Entry:
    """The state of one guard key: recordings so far, then a program, or the reason for eager."""

    def __init__(self):
        self.last = None  # (Recorder, input tensors, _Result) of the previous recorded call
        self.recordings = 0
        self.program: Program | None = None
        self.result: _Result | None = None
        self.refused: str | None = None
        self.replays = 0


class CompiledFunction:
    """`fn` with its kernel sequence captured per guard key (see the module docstring)."""

    def __init__(self, fn: Callable, max_recordings: int = 3):
        if not callable(fn):
            raise TypeError(f"tinyml.compile expects a callable, got {type(fn).__name__}")
        if max_recordings < 2:
            raise ValueError(f"tinyml.compile: max_recordings must be at least 2 (two calls are compared), "
                             f"got {max_recordings}")
        self.fn, self.max_recordings = fn, max_recordings
        self._entries: dict = {}
        self._warned: set = set()
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs) -> Any:
        if _capture_record._active is not None:  # inside another recording: run where it sees the kernels
            return self.fn(*args, **kwargs)
        tensors: list = []
        key = (_flatten(args, tensors), _flatten(kwargs, tensors), is_grad_enabled(),
               backends._force_reference)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        program = entry.program
        if program is not None:
            if DISPATCH_MARK in backends._cpu_cache and program.guards_hold():
                entry.replays += 1
                with _keep_awake():  # idle CPUs spin at the lowest priority instead of halting
                    arrays = program.run([t._data for t in tensors], tensors)
                return self._outputs(entry.result, arrays, tensors)
            self._entries = {key: entry}  # the kernels or parameters changed: every key records again
            entry.__init__()
        if entry.refused is not None:
            return self.fn(*args, **kwargs)
        return self._record(entry, key, args, kwargs, tensors)

    def __get__(self, instance, owner=None):
        """As a method decorator: `obj.step(x)` calls the compiled function with obj first."""
        return self if instance is None else functools.partial(self, instance)

    def _record(self, entry: _Entry, key, args, kwargs, tensors: list):
        devices = {t.device.type for t in tensors}
        if devices - {"cpu"}:
            self._refuse(entry, key, f"the inputs are on {', '.join(sorted(devices))}: tinyml.compile "
                                     "captures cpu functions only for now")
            return self.fn(*args, **kwargs)
        seen = [o for o, _ in entry.last[0].optimizers.values()] if entry.last is not None else ()
        rec = Recorder([t._data for t in tensors], seen)
        with rec:
            out = self.fn(*args, **kwargs)
        try:
            if rec.problem:
                raise Unsupported(rec.problem)
            result = _Result(out, rec, tensors)
        except Unsupported as e:  # this call on its own cannot be replayed
            self._refuse(entry, key, str(e))
            return out
        entry.recordings += 1
        previous, entry.last = entry.last, (rec, tensors, result)
        if previous is None:
            return out
        first, inputs1, result1 = previous
        try:
            if not result1.matches(result):
                raise Unsupported("the function returned a different structure or different Python values in "
                                  "two calls")
            program = build_program(first, rec, inputs1, tensors, result1.descs, result.descs)
        except Unsupported as e:  # the calls differ: record once more (a first call may differ), or give up
            if entry.recordings >= self.max_recordings:
                self._refuse(entry, key, str(e))
            return out
        for k, (a, b) in enumerate(zip(result1.objects, result.objects)):
            if result.tensors[k][0] == "array" and a is b:
                result.tensors[k] = ("object", b)  # the same tensor object every call: return it
        result.objects = []  # keep no tensor of a recorded call alive
        entry.program, entry.result, entry.last = program, result, None
        backends._cpu_cache[DISPATCH_MARK] = None
        return out

    def _refuse(self, entry: _Entry, key, reason: str):
        entry.refused, entry.last = reason, None
        if reason not in self._warned:
            self._warned.add(reason)
            name = getattr(self.fn, "__qualname__", self.fn)
            warnings.warn(f"tinyml.compile: {name} runs eagerly: {reason}", RuntimeWarning, stacklevel=4)

    @staticmethod
    def _outputs(result: _Result, arrays: tuple, tensors: list):
        out, k = [], 0
        for where in result.tensors:
            if where[0] == "input":
                out.append(tensors[where[1]])
                continue
            out.append(Tensor._make(arrays[k], where[1]) if where[0] == "array" else where[1])
            k += 1
        return _rebuild(result.template, out)

    # -- for users --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every recording: the next calls record again (after changing Python state the
        replay does not see, such as model.train()/eval() made outside the function)."""
        self._entries.clear()
        self._warned.clear()

    def explain(self) -> str:
        """One line per guard key seen: replaying (kernels and events), recording, or eager and why."""
        if not self._entries:
            return "not called yet"
        lines = []
        for n, entry in enumerate(self._entries.values()):
            if entry.program is not None:
                p = entry.program
                lines.append(f"signature {n}: replaying {p.n_kernels} kernel calls ({p.n_events} events), "
                             f"{entry.replays} replays so far")
            elif entry.refused is not None:
                lines.append(f"signature {n}: eager, because {entry.refused}")
            else:
                lines.append(f"signature {n}: recording ({entry.recordings} eager calls recorded)")
        return "\n".join(lines)

    def code(self) -> str:
        """The source of each replay (one per guard key that replays)."""
        return "\n".join(e.program.source for e in self._entries.values() if e.program is not None)

    @property
    def kernel_calls(self) -> int:
        """Kernel calls per replay of the most recently captured signature (0 before any capture)."""
        programs = [e.program for e in self._entries.values() if e.program is not None]
        return programs[-1].n_kernels if programs else 0


def compile(fn: Callable | None = None, *, max_recordings: int = 3):
    """Capture `fn`'s kernels and replay them (usable as `@tinyml.compile` or
    `@tinyml.compile(max_recordings=4)`). max_recordings: eager calls recorded, at most, looking for
    two consecutive ones that agree before giving up and running eagerly."""
    if fn is None:
        return lambda f: CompiledFunction(f, max_recordings)
    return CompiledFunction(fn, max_recordings)
