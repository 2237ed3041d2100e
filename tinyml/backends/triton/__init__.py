"""Triton kernels for the cuda device, one module per kernel family.

Each module opens with a header comment (what it holds, how to run its tests) and lists its
kernels in `__all__`; they register under the "triton" backend. Triton is imported only here,
when a cuda tensor first needs a kernel. Under TRITON_INTERPRET=1 the same kernels run in
Triton's interpreter on host memory (see backends/cuda.py).
"""
import importlib
import pkgutil

import triton  # noqa: F401  (an ImportError here becomes dispatch's "Triton kernels failed to load")

from .. import register_module

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        register_module(importlib.import_module(f"{__name__}.{_info.name}"), "triton")
