"""Kernel registry and dispatch: every op's computation goes through here.

A kernel is a plain function over backend arrays (numpy arrays on `cpu`, device arrays on
`cuda`) registered under a name and a backend. `dispatch(name, device_type)` returns the best
implementation for a device, in this order:

    cpu:  user -> cpu (C++ tinyml._C) -> reference (numpy)
    cuda: user -> triton

`TINYML_KERNELS=reference` restricts the cpu device to the numpy reference (the oracle), for
cross-checks. `register(name, device)` lets a user put in a kernel of their own:

    @tinyml.backends.register("gelu_forward", "cpu")
    def my_gelu(x, approximate): ...

Backends register lazily: the first dispatch for a device imports its backend modules, so
`import tinyml` stays fast and never imports triton.
"""
from __future__ import annotations

import os
from typing import Callable

# kernel name -> {backend name -> function}
_KERNELS: dict[str, dict[str, Callable]] = {}
_PRIORITY = {"cpu": ("user", "cpu", "reference"), "cuda": ("user", "triton")}
_BACKEND_DEVICE = {"user": None, "cpu": "cpu", "reference": "cpu", "triton": "cuda"}
_cache: dict[tuple[str, str], Callable] = {}
_loaded: set[str] = set()
# Callables that wrap every dispatched kernel (the profiler and TINYML_DEBUG use this).
# Each is `wrapper(fn, kernel_name, backend_name) -> fn`.
_wrappers: list[Callable] = []


_force_reference = os.environ.get("TINYML_KERNELS", "").lower() == "reference"


def _forced_reference() -> bool:
    return _force_reference


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
        _cache.clear()
        return self

    def __exit__(self, *exc):
        global _force_reference
        _force_reference = self.prev
        _cache.clear()


def add_kernel(name: str, backend: str, fn: Callable, device: str | None = None) -> None:
    """Record `fn` as the `backend` implementation of kernel `name` (used by the backends)."""
    key = backend if backend != "user" else f"user:{device}"
    _KERNELS.setdefault(name, {})[key] = fn
    _cache.clear()


def register_module(module, backend: str) -> None:
    """Register every function a backend module lists in `__all__` under its own name."""
    for name in module.__all__:
        add_kernel(name, backend, getattr(module, name))


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


def run(name: str, *args, **kwargs):
    """Run kernel `name` on tensors (dispatching on their device); returns tensors. This is what
    ops call inside Function.forward/backward."""
    from ..ops._dispatch import run as _run

    return _run(name, *args, **kwargs)


def unregister(name: str, device: str = "cpu") -> None:
    """Remove a user kernel registered with `register`."""
    _KERNELS.get(name, {}).pop(f"user:{device}", None)
    _cache.clear()


def _load(device_type: str) -> None:
    if device_type in _loaded:
        return
    if not _loaded and os.environ.get("TINYML_DEBUG"):
        from .. import debug

        debug._from_environment()
    _loaded.add(device_type)
    if device_type == "cpu":
        from . import reference  # noqa: F401  (registers itself)
        from . import cpu  # noqa: F401  (registers what tinyml._C provides)
    elif device_type == "cuda":
        from . import reference  # noqa: F401
        try:
            from . import triton  # noqa: F401
        except ImportError as e:  # pragma: no cover - depends on the machine
            _loaded.discard(device_type)
            raise RuntimeError(f"the cuda device needs Triton kernels, which failed to load: {e}") from e


def _candidates(device_type: str):
    if device_type == "cpu" and _forced_reference():
        return ("user", "reference")
    return _PRIORITY[device_type]


def dispatch(name: str, device_type: str = "cpu") -> Callable:
    """The kernel function for `name` on `device_type` ("cpu" or "cuda")."""
    fn = _cache.get((name, device_type))
    if fn is not None:
        return fn
    _load(device_type)
    impls = _KERNELS.get(name, {})
    for backend in _candidates(device_type):
        key = f"user:{device_type}" if backend == "user" else backend
        if key in impls:
            fn = impls[key]
            for wrap in _wrappers:
                fn = wrap(fn, name, backend)
            _cache[(name, device_type)] = fn
            return fn
    have = ", ".join(sorted(impls)) or "none"
    raise NotImplementedError(f"kernel {name!r} has no implementation for device {device_type!r} (has: {have})")


def backend_of(name: str, device_type: str = "cpu") -> str:
    """Which backend `dispatch(name, device_type)` picks: 'user', 'cpu', 'reference' or 'triton'."""
    _load(device_type)
    impls = _KERNELS.get(name, {})
    for backend in _candidates(device_type):
        if (f"user:{device_type}" if backend == "user" else backend) in impls:
            return backend
    raise NotImplementedError(f"kernel {name!r} has no implementation for device {device_type!r}")


def implementations(name: str) -> dict[str, Callable]:
    """All registered implementations of a kernel, by backend (loads the cpu backends)."""
    _load("cpu")
    return dict(_KERNELS.get(name, {}))


def kernel_names() -> list[str]:
    _load("cpu")
    return sorted(_KERNELS)


def clear_cache() -> None:
    """Forget dispatch decisions (after toggling a wrapper such as the profiler)."""
    _cache.clear()
