"""Recording one eager call of a function for `tinyml.compile` (tinyml/compile.py): every kernel
that ran, with each array argument named by where it came from.

While a `Recorder` is active it sits in `backends._wrappers` (first, so it sees the raw kernel
functions) and logs each kernel call that ran (a call that returned NotImplemented did not run).
An array argument is one of

    ("in", i)          the array of the i-th tensor argument of the function
    ("slot", s)        the s-th array a recorded kernel returned during this call
    ("view", src, byte_offset, shape, strides, dtype)
                       a numpy view of an "in" or "slot" array (a transpose, reshape, slice ...)
    ("ext", e)         anything else: an array made outside the recorded kernels (a parameter, an
                       optimizer buffer, a mask made with numpy); externals[e] keeps the array, its
                       memory owner and a copy of its value, so that two recordings can tell a
                       persistent buffer (the same memory every call) from a constant (equal
                       values) from something the capture cannot reproduce (neither)

and every other argument (numbers, dtypes, tuples of them) is kept as its value. Lists of
arrays (the optimizer kernels' parameter lists) become ("list", [descs]).

Besides kernels, two kinds of Python in a training step matter to a replay, and the recorder
logs them as events too:

- "segment": a call of `Optimizer.step`, an LR scheduler's `step` or `autograd.zero_grad`
  (Module/Optimizer.zero_grad). These are Python state machines (step counters, learning
  rates, `.grad = None`): a replay runs them eagerly, so their kernels are not recorded.
- "bind": the `.grad` each leaf tensor holds, before every segment and at the end: a replay
  assigns the new arrays to the same leaves (the leaves are found through the backward engine's
  `count_consumers`, patched while recording).

It also notes every `nn.Module` called (`Module.__call__`, patched while recording): their
train/eval modes are guards of the replay.
"""
from __future__ import annotations

import weakref

import numpy as np

from . import autograd, backends
from .tensor import Tensor

_active: Recorder | None = None
# A key that is never a kernel name, kept in the dispatch table `backends._cpu_cache` while the
# kernels chosen for each name stay the same: registering a kernel, force_reference or a profiler
# clears that table (backends._clear_caches), which tells every compiled function to record again.
DISPATCH_MARK = "<tinyml.compile: dispatch unchanged>"


def array_owner(a: np.ndarray):
    """The object whose memory `a` views: the end of its `.base` chain (itself if it owns it)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def make_view(src: np.ndarray, offset: int, shape: tuple, strides: tuple, dtype) -> np.ndarray:
    """An array over src's memory starting `offset` bytes after src's first element (what a
    replay uses to rebuild a view of a kernel's output)."""
    if src.flags.c_contiguous and offset >= 0 and all(s >= 0 for s in strides):
        return np.ndarray(shape, dtype, buffer=src, offset=offset, strides=strides)
    return _view_by_interface(src, offset, shape, strides, dtype)


class _Interface:
    def __init__(self, src, iface):
        self.src, self.__array_interface__ = src, iface


def _view_by_interface(src, offset, shape, strides, dtype):
    iface = {"data": (_address(src) + offset, not src.flags.writeable), "shape": shape,
             "strides": strides, "typestr": np.dtype(dtype).str, "version": 3}
    return np.asarray(_Interface(src, iface))


def _extent(a: np.ndarray) -> tuple[int, int]:
    """The byte addresses [low, high) that a non-empty array's elements cover."""
    low = high = _address(a)
    for n, stride in zip(a.shape, a.strides):
        if stride < 0:
            low += (n - 1) * stride
        else:
            high += (n - 1) * stride
    return low, high + a.itemsize


def same_geometry(a: np.ndarray, b: np.ndarray) -> bool:
    return (_address(a) == _address(b) and a.shape == b.shape and a.strides == b.strides
            and a.dtype == b.dtype)


class Unsupported(Exception):
    """Raised while recording when a call cannot be captured (the message says why)."""


class Call:
    __slots__ = ("fn", "name", "backend", "args", "kwargs", "outs", "as_array")

    def __init__(self, fn, name, backend, args, kwargs):
        self.fn, self.name, self.backend, self.args, self.kwargs = fn, name, backend, args, kwargs
        self.as_array = False  # numpy scalar results were turned into 0-d arrays
        self.outs = None  # None | ("one", desc) | ("many", [desc or None]) | ("value", python value)


class Recorder:
    """Logs one call of the captured function (use as a context manager around it)."""

    def __init__(self, input_arrays: list, optimizers=()):
        # ("call", Call) | ("segment", fn, obj, args, kwargs) | ("bind", [(leaf, desc)])
        self.events: list = []
        self.externals: list = []  # [array, owner, copy of value, mutated]
        self.n_slots = 0
        self.leaves: dict = {}  # id(leaf) -> leaf, every leaf the backward engine reached
        self.modules: dict = {}  # id(module) -> module, every nn.Module called (their .training is a guard)
        self._bound: dict = {}  # id(leaf) -> the desc bound last (emit a bind only when it changes)
        self._known: dict = {}  # id(array) -> (weakref or the array, desc)
        self._owners: dict = {}  # id(memory owner) -> [(weakref or the array, desc)] of known arrays in it
        self._depth = 0  # > 0 inside a kernel or a segment: nested kernel calls are not recorded
        self.input_arrays = input_arrays
        for i, a in enumerate(input_arrays):
            if id(a) not in self._known:
                self._remember(a, a, ("in", i))
        self.problem: str | None = None  # the first thing that made this call uncapturable
        # id -> (optimizer, its group settings when last seen): those of the previous recording are
        # checked from the start of this call (a setting changed by Python inside fn is refused)
        self.optimizers = {id(o): (o, _hyperparameters(o)) for o in optimizers}

    # -- naming arrays --------------------------------------------------------------------------
    def _remember(self, a, ref, desc):
        self._known[id(a)] = (ref, desc)
        if a.size:
            self._owners.setdefault(id(array_owner(a)), []).append((ref, desc))

    def _lookup(self, a):
        entry = self._known.get(id(a))
        if entry is None:
            return None
        ref, desc = entry
        held = ref() if type(ref) is weakref.ref else ref
        return desc if held is a else None

    def _as_view(self, a, where: str):
        """("view", src, ...) when `a` lies inside exactly one known array of its memory owner (numpy
        views name the owner as their base, not the array they were taken from); else None."""
        if not a.size:
            return None
        owner = array_owner(a)
        low, high = _extent(a)
        found = []
        for ref, desc in self._owners.get(id(owner), ()):
            src = ref() if type(ref) is weakref.ref else ref
            if src is None or array_owner(src) is not owner:
                continue
            src_low, src_high = _extent(src)
            if src_low <= low and high <= src_high:
                found.append((src, desc))
        if not found:
            return None
        if len(found) > 1 and any(d != found[0][1] for _, d in found[1:]):
            raise Unsupported(f"{where}: a view of memory that two arrays of the step share (two inputs "
                              "sliced from one array?); pass separate arrays")
        src, desc = found[0]
        offset = _address(a) - _address(src)
        try:
            rebuilt = make_view(src, offset, a.shape, a.strides, a.dtype)
        except (ValueError, TypeError):
            rebuilt = None
        if rebuilt is None or not same_geometry(rebuilt, a):
            raise Unsupported(f"{where}: a view (shape {a.shape}, strides {a.strides}) that cannot be "
                              "rebuilt")
        return ("view", desc, offset, a.shape, a.strides, a.dtype)

    def describe(self, a, where: str):
        """The desc of argument `a` (see the module docstring)."""
        if type(a) is np.ndarray:
            desc = self._lookup(a) or self._as_view(a, where)
            if desc is not None:
                return desc
            self.externals.append([a, array_owner(a), a.copy(), False])
            return ("ext", len(self.externals) - 1)
        if isinstance(a, (list, tuple)) and any(type(x) is np.ndarray for x in a):
            return ("list", type(a), [self.describe(x, where) for x in a])
        if isinstance(a, np.ndarray) or hasattr(a, "__cuda_array_interface__") or isinstance(a, Tensor):
            raise Unsupported(f"{where}: an argument of type {type(a).__name__} (an ndarray subclass, a "
                              "device array or a Tensor) reached a kernel")
        if type(a) is list or type(a) is dict:
            return ("value", type(a)(a))  # a copy: Python may change the object the caller passed later
        return ("value", a)

    def _register_output(self, o, where: str):
        if type(o) is not np.ndarray:
            return None
        # a kernel may return its input or a view of it: then it keeps that name
        desc = self._lookup(o) or self._as_view(o, where)
        if desc is None:
            desc = ("slot", self.n_slots)
            self.n_slots += 1
            self._remember(o, weakref.ref(o), desc)
        else:
            self._known[id(o)] = (weakref.ref(o), desc)
        return desc

    # -- the kernel wrapper (backends._wrappers) -------------------------------------------------
    def wrap(self, fn, name: str, backend: str):
        rec = self

        def recorded(*args, **kwargs):
            if rec is not _active or rec._depth:
                return fn(*args, **kwargs)
            try:
                call = Call(fn, name, backend, [rec.describe(a, f"kernel {name!r} argument {i}")
                                                for i, a in enumerate(args)],
                            {k: rec.describe(v, f"kernel {name!r} argument {k}=") for k, v in kwargs.items()})
            except Unsupported as e:
                rec.problem = rec.problem or str(e)
                call = None
            rec._depth += 1
            try:
                out = fn(*args, **kwargs)
            finally:
                rec._depth -= 1
            if out is NotImplemented or call is None:
                return out
            try:
                rec._check_mutations(call.args, call.kwargs)
                if isinstance(out, np.generic):
                    # a 0-d result as a numpy scalar: `run` wraps it with np.asarray, an array the recorder
                    # would not know; made here instead (and in the replay: Call.as_array), it is a slot
                    out = np.asarray(out)
                    call.as_array = True
                elif type(out) in (tuple, list) and any(isinstance(o, np.generic) for o in out):
                    out = type(out)([np.asarray(o) if isinstance(o, np.generic) else o for o in out])
                    call.as_array = True
                if type(out) is np.ndarray:
                    call.outs = ("one", rec._register_output(out, f"kernel {name!r}'s result"))
                elif type(out) in (tuple, list) and all(o is None or type(o) is np.ndarray for o in out):
                    call.outs = ("many", type(out), [rec._register_output(o, f"kernel {name!r}'s result")
                                                     for o in out])
                else:
                    call.outs = ("value", out)  # a number: fine if nothing reads it, refused if a kernel does
            except Unsupported as e:
                rec.problem = rec.problem or str(e)
                return out
            rec.events.append(("call", call))
            return out

        recorded.__name__ = getattr(fn, "__name__", name)
        return recorded

    def _check_mutations(self, args, kwargs):
        for desc in list(args) + list(kwargs.values()):
            if desc[0] == "list":
                self._check_mutations(desc[2], {})
            elif desc[0] == "ext":
                entry = self.externals[desc[1]]
                nan = entry[0].dtype.kind in "fc"
                if not entry[3] and not np.array_equal(entry[0], entry[2], equal_nan=nan):
                    entry[3] = True  # written in place: a persistent buffer, never a constant

    # -- segments and leaf gradients ---------------------------------------------------------------
    def bind_leaves(self):
        binds = []
        for key, leaf in self.leaves.items():
            g = leaf._grad
            desc = None if g is None else self.describe(g._data, "a leaf's .grad")
            if self._bound.get(key, "unset") != desc:
                self._bound[key] = desc
                binds.append((leaf, desc))
        if binds:
            self.events.append(("bind", binds))

    def run_segment(self, fn, obj, args, kwargs):
        """Run `fn(obj, *args, **kwargs)` (an optimizer step, zero_grad ...) unrecorded, as an event."""
        if self is not _active or self._depth:
            return fn(obj, *args, **kwargs) if obj is not None else fn(*args, **kwargs)
        if obj is not None and "step" in getattr(obj, "__dict__", ()):
            self.problem = self.problem or (
                f"{type(obj).__name__}.step is replaced on the instance (a monitor's wrapper?): a replay "
                "would run either its Python or its kernels twice; compile the function without it")
        for group in getattr(obj, "param_groups", ()):  # an optimizer's parameters are leaves it reads
            for p in group["params"]:
                if p.requires_grad:
                    self.leaves.setdefault(id(p), p)
        self.bind_leaves()
        self.events.append(("segment", fn, obj, args, kwargs))
        optimizer = getattr(obj, "optimizer", None)  # an LR scheduler's optimizer: its changes are replayed
        if hasattr(obj, "param_groups"):
            self.check_hyperparameters(obj)
        self._depth += 1
        try:
            return fn(obj, *args, **kwargs) if obj is not None else fn(*args, **kwargs)
        finally:
            self._depth -= 1
            if hasattr(optimizer, "param_groups"):
                self.optimizers[id(optimizer)] = (optimizer, _hyperparameters(optimizer))

    def check_hyperparameters(self, optimizer):
        """An optimizer's learning rate (or other group setting) changed inside the function since it
        was last seen, but not by an LR scheduler's step (which a replay runs): Python the replay
        would skip (a hand-written schedule) changed it, so the call cannot be captured."""
        now = _hyperparameters(optimizer)
        seen = self.optimizers.get(id(optimizer))
        if seen is not None and seen[0] is optimizer and seen[1] != now:
            self.problem = self.problem or (
                f"the settings of {type(optimizer).__name__}'s parameter groups changed inside the function "
                "other than by an LR scheduler's step (a hand-written schedule?): a replay would skip that "
                "Python; change them outside the compiled function or use a tinyml.optim.lr_scheduler")
        self.optimizers[id(optimizer)] = (optimizer, now)

    # -- installing the hooks ---------------------------------------------------------------------
    def __enter__(self) -> Recorder:
        global _active
        if _active is not None:
            raise RuntimeError("tinyml.compile: a compiled function was called while another one is being "
                               "recorded; compile the outer function only")
        _active = self
        self._dispatch_unchanged = DISPATCH_MARK in backends._cpu_cache
        backends._wrappers.insert(0, self.wrap)
        backends.clear_cache()
        self._patched = _install_segment_hooks(self)
        return self

    def __exit__(self, *exc):
        global _active
        for owner, attr, original in reversed(self._patched):
            setattr(owner, attr, original)
        backends._wrappers.remove(self.wrap)
        backends.clear_cache()
        if self._dispatch_unchanged:  # our own cache clears do not change which kernels run
            backends._cpu_cache[DISPATCH_MARK] = None
        _active = None
        if exc[0] is None:
            self.bind_leaves()
            for optimizer, _ in list(self.optimizers.values()):
                self.check_hyperparameters(optimizer)


def _hyperparameters(optimizer) -> list:
    return [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]


def _subclasses(cls) -> list:
    out, stack = [], [cls]
    while stack:
        c = stack.pop()
        out.append(c)
        stack.extend(c.__subclasses__())
    return out


def _install_segment_hooks(rec: Recorder) -> list:
    """Patch, for this recording only: the backward engine's count_consumers (to learn the leaves),
    Module.__call__ (to learn the modules), autograd.zero_grad, and every optimizer's and LR
    scheduler's `step` (to make them segments)."""
    from .nn import Module  # lazy: tinyml.nn and tinyml.optim load on first use (tinyml/__init__.py)
    from .optim import Optimizer
    from .optim.lr_scheduler import LRScheduler

    patched = []
    count_consumers = autograd.count_consumers

    def counting(roots):
        consumers = count_consumers(roots)
        if rec._depth == 0:
            for node in consumers:
                if type(node) is Tensor:
                    rec.leaves.setdefault(id(node), node)
        return consumers

    zero_grad = autograd.zero_grad

    def zero_grad_segment(tensors, set_to_none=True):
        return rec.run_segment(zero_grad, None, (list(tensors), set_to_none), {})

    module_call = Module.__call__

    def calling(module, *args, **kwargs):
        if rec._depth == 0:
            rec.modules.setdefault(id(module), module)
        return module_call(module, *args, **kwargs)

    for owner, attr, new in ((autograd, "count_consumers", counting),
                             (autograd, "zero_grad", zero_grad_segment), (Module, "__call__", calling)):
        patched.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, new)
    for cls in _subclasses(Optimizer) + _subclasses(LRScheduler):
        if "step" in cls.__dict__:
            original = cls.__dict__["step"]

            def step(self, *args, _original=original, **kwargs):
                return rec.run_segment(_original, self, args, kwargs)

            patched.append((cls, "step", original))
            cls.step = step
    return patched
