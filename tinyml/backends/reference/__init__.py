"""The numpy reference backend: one module per kernel family, every kernel the oracle for the
C++ and Triton versions. Each module lists its kernels in `__all__`; every module in this folder
is registered under the "reference" backend."""
import importlib
import pkgutil

from .. import register_module

for _info in pkgutil.iter_modules(__path__):
    register_module(importlib.import_module(f"{__name__}.{_info.name}"), "reference")
