"""Utilities: cpp_extension (build your own C++ kernels at run time)."""
from . import cpp_extension  # noqa: F401
