"""tinyml: a from-scratch deep-learning framework (numpy autograd, C++ and Triton kernels).

    import tinyml
    x = tinyml.randn(4, 3, requires_grad=True)
    y = (x @ x.T).relu().sum()
    y.backward()
"""
from . import dtypes as _dtypes
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .device import device
from .dtypes import (bfloat16, bool_, double, dtype, float, float16, float32, float64, get_default_dtype, half,
                     int8, int16, int32, int64, long, set_default_dtype, uint8)
from .dtypes import int as int  # noqa: PLC0414
from .io import load, save  # noqa: F401  (safetensors checkpoints, our own codec)
from .ops import *  # noqa: F401,F403
from .amp import autocast, is_autocast_enabled
from .random import get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from .tensor import Tensor
from .threads import get_num_threads, set_num_threads

# `import *` from a package without __all__ also copies its submodules (ops.nn, ops.conv, ...):
# drop them, or `tinyml.nn` would be tinyml.ops.nn instead of the tinyml.nn package.
[globals().pop(_k) for _k, _v in list(globals().items())
 if type(_v) is type(_dtypes) and _v.__name__.startswith(__name__ + ".ops.")]

bool = bool_  # tinyml.bool, as torch.bool (shadows the builtin only inside this namespace)
promote_types = _dtypes.promote_types
result_type = _dtypes.result_type

__version__ = "0.1.0"


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def __getattr__(name):
    # Submodules that are loaded on first use keep `import tinyml` fast.
    import importlib

    if name in ("nn", "optim", "testing", "backends", "data", "profiler", "viz", "memory", "cuda", "autograd",
                "models", "train", "io", "utils"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'tinyml' has no attribute {name!r}")
