"""TINYML_DEBUG: log every kernel launch to stderr.

    TINYML_DEBUG=1   kernel, backend, input shapes and dtypes, time
    TINYML_DEBUG=2   also the bytes moved (inputs + outputs) and the achieved bandwidth

Installed as a dispatch wrapper by tinyml.backends when the variable is set at import, or by
`enable(level)` at run time. The backend logged is the one that ran: a cpu kernel that declines
an input (returns NotImplemented, e.g. for float16) logs nothing, and the reference that runs
instead logs its line.
"""
from __future__ import annotations

import os
import sys
import time

from . import backends
from .profiler import _nbytes, _shape_of


def _describe(args) -> str:
    parts = []
    for a in args:
        s = _shape_of(a)
        if s is None:
            continue
        parts.append(f"{getattr(a, 'dtype', '')}{list(s) if isinstance(s, tuple) else s}")
    return " ".join(parts)


def _make_wrapper(level: int):
    def wrapper(fn, name: str, backend: str):
        def logged(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            dt = time.perf_counter() - t0
            if out is NotImplemented:  # declined: the next backend runs and logs
                return out
            line = f"[tinyml] {name:<24} {backend:<9} {dt * 1e6:9.1f} us  {_describe(args)}"
            if level >= 2:
                nbytes = _nbytes(args) + _nbytes(out if isinstance(out, tuple) else (out,))
                line += f"  {nbytes / 1e6:.3f} MB  {nbytes / max(dt, 1e-9) / 1e9:.2f} GB/s"
            print(line, file=sys.stderr)
            return out

        return logged

    wrapper.debug_level = level
    return wrapper


def enable(level: int = 1) -> None:
    """Start logging kernel launches (level 1 or 2); `enable(0)` stops."""
    backends._wrappers[:] = [w for w in backends._wrappers if not hasattr(w, "debug_level")]
    if level > 0:
        backends._wrappers.append(_make_wrapper(level))
    backends.clear_cache()


def _from_environment() -> None:
    value = os.environ.get("TINYML_DEBUG", "")
    if value:
        try:
            level = int(value)
        except ValueError:
            raise ValueError(f"TINYML_DEBUG must be 0, 1 or 2, got {value!r}") from None
        enable(level)
