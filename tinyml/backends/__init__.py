"""Kernel registry and dispatch: every op's computation goes through here.

A kernel is a plain function over backend arrays (numpy arrays on `cpu`, device arrays on
`cuda`) registered under a name and a backend. Every backend registers the same way: a family
module (`reference/softmax.py`, `cpu/softmax.py`, `triton/softmax.py`) lists its kernels in
`__all__`, each a function named after the kernel (`def log_softmax_forward(x, dim)`), and its
package registers every module of its folder (`register_module`).

Ops call `run("log_softmax_forward", x, dim)`: it unwraps the tensors, picks the kernel for their
device with `dispatch(name, device_type)` and wraps the results. The order tried is

    cpu:  user -> cpu (C++ tinyml._C) -> reference (numpy)
    cuda: user -> triton

A kernel that does not take an input (a dtype or layout the C++ code does not handle) returns
`NotImplemented` before doing any work, and the next backend in the order runs: a float16
softmax on the cpu device runs the reference, and the profiler and TINYML_DEBUG say "reference".
The reference and Triton kernels take every input their op can give them.

`TINYML_KERNELS=reference` restricts the cpu device to the numpy reference (the oracle), for
cross-checks. `register(name, device)` lets a user put in a kernel of their own (which may
decline inputs with `NotImplemented` too):

    @tinyml.backends.register("gelu_forward", "cpu")
    def my_gelu(x, approximate): ...

Backends register lazily: the first dispatch for a device imports its backend modules, so
`import tinyml` stays fast and never imports triton. The first cpu dispatch also raises glibc
malloc's mmap and trim thresholds, so that the arrays a training step frees are reused by the
next step instead of being faulted in again (tinyml/_host_malloc.py; `release_host_memory()`
gives the freed memory back, TINYML_HOST_MALLOC=default turns this off).
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from .._host_malloc import release_host_memory, tune_host_malloc  # noqa: F401  (release: public here)
from ..device import CPU
from ..device import device as Device
from ..dtypes import _FROM_NP
from ..tensor import Tensor
from ._run_exact import _cpu_run, run1, run2  # noqa: F401  (run of one or two arguments, without *args)

# kernel name -> {backend name -> function}; user kernels are keyed "user:<device>"
_KERNELS: dict[str, dict[str, Callable]] = {}
# (kernel name, backend) -> the module that lists it in __all__ (for docs/kernels.md)
_MODULES: dict[tuple[str, str], str] = {}
_PRIORITY = {"cpu": ("user", "cpu", "reference"), "cuda": ("user", "triton")}
_LAST_RESORT = ("reference", "triton")  # never decline: a chain ends at them
_cache: dict[tuple[str, str], Callable] = {}
_cpu_cache: dict[str, Callable] = {}  # the cpu entries of _cache by kernel name alone
# _cpu_run (from _run_exact.py, whose run1/run2 read it too): what `run` calls on the cpu device, by
# kernel name: (first, fallback), the functions themselves for a cpu kernel with the reference behind
# it (no frame of the dispatcher's).
_loaded: set[str] = set()
# Callables that wrap every dispatched implementation (the profiler and TINYML_DEBUG use this).
# Each is `wrapper(fn, kernel_name, backend_name) -> fn`. A call whose result is NotImplemented
# did not run (the next backend runs, through its own wrapped function): record nothing for it.
_wrappers: list[Callable] = []


def _clear_caches() -> None:
    _cache.clear()
    _cpu_cache.clear()
    _cpu_run.clear()


_force_reference = os.environ.get("TINYML_KERNELS", "").lower() == "reference"


class force_reference:
    """Run cpu kernels on the numpy reference inside a block (as TINYML_KERNELS=reference does):

        with tinyml.backends.force_reference():
            ...
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __enter__(self):
        global _force_reference
        self.prev, _force_reference = _force_reference, self.enabled
        _clear_caches()
        return self

    def __exit__(self, *exc):
        global _force_reference
        _force_reference = self.prev
        _clear_caches()


# -- registration -----------------------------------------------------------------------------
def add_kernel(name: str, backend: str, fn: Callable, device: str | None = None) -> None:
    """Record `fn` as the `backend` implementation of kernel `name` (what the two below use)."""
    key = backend if backend != "user" else f"user:{device}"
    _KERNELS.setdefault(name, {})[key] = fn
    _clear_caches()


def register_module(module, backend: str) -> None:
    """Register every function a backend module lists in `__all__`, under its own name."""
    for name in module.__all__:
        add_kernel(name, backend, getattr(module, name))
        _MODULES[(name, backend)] = module.__name__


def register(name: str, device: str = "cpu", backend: str = "user") -> Callable[[Callable], Callable]:
    """Decorator: use `fn` for kernel `name` on `device` ahead of the built-in backends.

    backend="reference" registers the numpy reference (the oracle) of a new kernel instead; it
    serves the cpu device when nothing faster is registered, and TINYML_KERNELS=reference."""
    if device not in _PRIORITY:
        raise ValueError(f"register: unknown device {device!r}; expected one of {', '.join(_PRIORITY)}")
    if backend not in ("user", "reference"):
        raise ValueError(f"register: backend must be 'user' or 'reference', got {backend!r}")
    if backend == "reference" and device != "cpu":
        raise ValueError("register: a reference kernel is a numpy function for the cpu device")

    def deco(fn: Callable) -> Callable:
        add_kernel(name, backend, fn, device)
        return fn

    return deco


def unregister(name: str, device: str = "cpu") -> None:
    """Remove a user kernel registered with `register`."""
    _KERNELS.get(name, {}).pop(f"user:{device}", None)
    _clear_caches()


def _load(device_type: str) -> None:
    if device_type in _loaded:
        return
    if not _loaded and os.environ.get("TINYML_DEBUG"):
        from .. import debug  # lazy: debug imports this module (it installs a wrapper here)

        debug._from_environment()
    _loaded.add(device_type)
    if device_type == "cpu":
        tune_host_malloc()  # freed activation buffers stay for the next step (tinyml/_host_malloc.py)
        from . import cpu, reference  # noqa: F401  (they register themselves; cpu what tinyml._C provides)
    elif device_type == "cuda":
        from . import reference  # noqa: F401
        try:
            from . import triton  # noqa: F401
        except ImportError as e:  # pragma: no cover - depends on the machine
            _loaded.discard(device_type)
            raise RuntimeError(f"the cuda device needs Triton kernels, which failed to load: {e}") from e


# -- choosing an implementation ---------------------------------------------------------------
def _candidates(device_type: str):
    if device_type == "cpu" and _force_reference:
        return ("user", "reference")
    return _PRIORITY[device_type]


def _chain(name: str, device_type: str) -> list[tuple[str, Callable]]:
    """[(backend, fn)] for `name` on `device_type`, in the order they are tried."""
    _load(device_type)
    impls = _KERNELS.get(name, {})
    chain = []
    for backend in _candidates(device_type):
        fn = impls.get(f"user:{device_type}" if backend == "user" else backend)
        if fn is not None:
            chain.append((backend, fn))
            if backend in _LAST_RESORT:
                break
    if not chain:
        have = ", ".join(sorted(impls)) or "none"
        raise NotImplementedError(f"kernel {name!r} has no implementation for device {device_type!r} "
                                  f"(has: {have})")
    return chain


def _describe(args) -> str:
    return ", ".join(f"{a.dtype}{list(a.shape)}" if hasattr(a, "dtype") and hasattr(a, "shape")
                     else type(a).__name__ for a in args)


def _wrapped(name: str, chain: list[tuple[str, Callable]]) -> list[Callable]:
    """The chain's functions, each inside every wrapper of `_wrappers` (the profiler's, ...)."""
    fns = []
    for backend, fn in chain:
        for wrap in _wrappers:
            fn = wrap(fn, name, backend)
        fns.append(fn)
    return fns


def _first_that_runs(name: str, device_type: str, chain: list[tuple[str, Callable]],
                     fns: list[Callable]) -> Callable:
    """One function for the chain (`fns`, its functions wrapped): each implementation in turn until
    one does not return NotImplemented. A chain of one kernel that never declines is that kernel."""
    if len(chain) == 1 and chain[0][0] in _LAST_RESORT:
        return fns[0]
    fns = tuple(fns)
    backends = ", ".join(b for b, _ in chain)

    def kernel(*args, **kwargs):
        for fn in fns:
            out = fn(*args, **kwargs)
            if out is not NotImplemented:
                return out
        raise NotImplementedError(f"kernel {name!r} on device {device_type!r}: every implementation "
                                  f"({backends}) declined the inputs ({_describe(args)})")

    kernel.__name__ = kernel.__qualname__ = name
    return kernel


def dispatch(name: str, device_type: str = "cpu") -> Callable:
    """The kernel function for `name` on `device_type` ("cpu" or "cuda")."""
    fn = _cpu_cache.get(name) if device_type == "cpu" else _cache.get((name, device_type))
    if fn is None:
        chain = _chain(name, device_type)
        fns = _wrapped(name, chain)
        fn = _cache[(name, device_type)] = _first_that_runs(name, device_type, chain, fns)
        if device_type == "cpu":
            _cpu_cache[name] = fn
            # run's pair: a kernel and the last resort behind it (cpu -> reference, user -> reference)
            # are called one after the other by run itself; any other chain through `fn`'s loop
            _cpu_run[name] = (fns[0], fns[1]) if len(chain) == 2 and chain[1][0] in _LAST_RESORT else (fn, fn)
    return fn


def backend_of(name: str, device_type: str = "cpu") -> str:
    """The backend `dispatch(name, device_type)` tries first: 'user', 'cpu', 'reference' or
    'triton' (a 'cpu' kernel may still decline an input, which then runs on the reference)."""
    return _chain(name, device_type)[0][0]


def implementations(name: str) -> dict[str, Callable]:
    """All registered implementations of a kernel, by backend (loads the cpu backends). A 'cpu'
    one returns NotImplemented for inputs it does not take."""
    _load("cpu")
    return dict(_KERNELS.get(name, {}))


def kernel_names() -> list[str]:
    _load("cpu")
    return sorted(_KERNELS)


def clear_cache() -> None:
    """Forget dispatch decisions (after toggling a wrapper such as the profiler)."""
    _clear_caches()


# -- running a kernel on tensors --------------------------------------------------------------
def _device_error(a: Device, b: Device, name: str) -> RuntimeError:
    return RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                        f"{a} and {b} (in kernel {name!r})")


def run(name: str, *args, **kwargs):
    """Run kernel `name` on the device of its tensor arguments (tensors, lists of tensors, or
    plain values): each Tensor becomes its array, the kernel runs on them, and array results come
    back as tensors on that device (a tuple of results as a tuple). What ops call inside
    Function.forward/backward."""
    n = len(args)
    if n == 1 or n == 2:
        # The hot path, every elementwise op forward and backward: a cpu tensor, then a cpu tensor
        # or a plain value, and an array result, in straight code (the loop below does the same).
        a = args[0]
        if type(a) is Tensor and a.device is CPU:
            if n == 2:
                b = args[1]
                kind = type(b)
                if kind is Tensor:
                    b = b._data if b.device is CPU else _NOT_FAST
                elif kind is list or kind is tuple:
                    b = _NOT_FAST
            pair = _cpu_run.get(name)
            if pair is not None and (n == 1 or b is not _NOT_FAST):
                fn, fallback = pair  # dispatch's chain, without a frame of its own (see _cpu_run)
                x = a._data
                if n == 1:
                    out = fn(x, **kwargs) if kwargs else fn(x)
                    if out is NotImplemented:
                        out = fallback(x, **kwargs) if kwargs else fallback(x)
                else:
                    out = fn(x, b, **kwargs) if kwargs else fn(x, b)
                    if out is NotImplemented:
                        out = fallback(x, b, **kwargs) if kwargs else fallback(x, b)
                if type(out) is not np.ndarray:
                    return _wrap(out, CPU)
                t = _new_object(Tensor)  # Tensor._make(out, CPU)'s body, inlined: once per op
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
    dev = None
    arrays = []
    for a in args:
        kind = type(a)
        if kind is Tensor:
            d = a.device
            if d is not dev:  # devices are interned: `is` settles it but for the first tensor
                if dev is None:
                    dev = d
                elif d != dev:
                    raise _device_error(dev, d, name)
            arrays.append(a._data)
        elif (kind is list or kind is tuple) and a and type(a[0]) is Tensor:
            for t in a:
                if t.device is not dev:
                    if dev is None:
                        dev = t.device
                    elif t.device != dev:
                        raise _device_error(dev, t.device, name)
            arrays.append([t._data for t in a])
        else:
            arrays.append(a)
    # one dict lookup on the cpu device: the table keyed by kernel name
    pair = _cpu_run.get(name) if dev is CPU else None
    if pair is None:
        if dev is None:
            raise TypeError(f"kernel {name!r} called without a tensor argument; use run_on(device, ...)")
        fn = dispatch(name, dev.type)
        out = fn(*arrays, **kwargs) if kwargs else fn(*arrays)
    else:
        out = pair[0](*arrays, **kwargs) if kwargs else pair[0](*arrays)
        if out is NotImplemented:
            out = pair[1](*arrays, **kwargs) if kwargs else pair[1](*arrays)
    kind = type(out)
    if kind is np.ndarray:
        return Tensor._make(out, dev)
    if kind is tuple or kind is list or out is None:
        return _wrap(out, dev)
    return Tensor._make(out, dev)


_NOT_FAST = object()  # run's marker for an argument its hot path does not take
_new_object = object.__new__


def run_on(dev: Device, name: str, *args, **kwargs):
    """Run a kernel that takes no tensors (creation kernels) on device `dev`."""
    return _wrap(dispatch(name, dev.type)(*args, **kwargs), dev)


def _wrap(out, dev: Device):
    if type(out) is tuple:
        return tuple([None if o is None else Tensor._make(o, dev) for o in out])
    if type(out) is list:
        return [Tensor._make(o, dev) for o in out]
    if out is None:
        return None
    return Tensor._make(out, dev)
