"""tinyml: a from-scratch deep-learning framework (numpy autograd, C++ and Triton kernels).

    import tinyml
    x = tinyml.randn(4, 3, requires_grad=True)
    y = (x @ x.T).relu().sum()
    y.backward()

Here at `tinyml.<name>`: Tensor, Size, the dtypes (finfo, iinfo), device, grad modes (no_grad, ...),
autocast, seeds, threads, save/load, compile (record a step's kernels, replay them: docs/compile.md),
and every op of tinyml.ops (tinyml.exp, tinyml.cat, ...);
tinyml.backends (the kernel registry, whose backends load on their first dispatch). Loaded on first
use, so that `import tinyml` stays fast: nn, optim, data, testing, profiler, viz, memory, cuda, utils,
fft, linalg, special, distributions, distributed, and tinyml.models / tinyml.train (the models/ and train/
folders of the repository).

The core, bottom up: dtypes.py, device.py; tensor.py (the Tensor data structure); _graph.py and
autograd.py (Context, Edge, Function, backward); ops/ (the differentiable ops, over the kernels of
backends/); tensor_methods.py (binds the op methods onto Tensor, last).
"""
from . import dtypes as _dtypes
from . import tensor_methods as _tensor_methods  # noqa: F401  (binds Tensor's op methods; it imports the ops)
from .amp import autocast, is_autocast_enabled  # noqa: F401
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from .compile import compile  # noqa: F401  (tinyml.compile(step): kernel capture and replay)
from .device import device  # noqa: F401
from .dtypes import (  # noqa: F401
    bfloat16,
    bool_,
    double,
    dtype,
    float,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int8,
    int16,
    int32,
    int64,
    long,
    set_default_dtype,
    uint8,
)
from .dtypes import int as int  # noqa: PLC0414
from .io import load, save  # noqa: F401  (safetensors checkpoints, our own codec)
from .ops import *  # noqa: F401,F403
from .random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state  # noqa: F401
from .size import Size  # noqa: F401  (the type of Tensor.shape, as torch.Size)
from .tensor import Tensor
from .threads import get_num_threads, set_num_threads  # noqa: F401

# `import *` from a package without __all__ also copies its submodules (ops.conv, ops.scan, ...):
# drop them, so that `tinyml.<name>` is only ever the public function or subpackage of that name.
[globals().pop(_k) for _k, _v in list(globals().items())
 if type(_v) is type(_dtypes) and _v.__name__.startswith(__name__ + ".ops.")]

bool = bool_  # tinyml.bool, as torch.bool (shadows the builtin only inside this namespace)
promote_types = _dtypes.promote_types
result_type = _dtypes.result_type
finfo = _dtypes.FloatInfo  # torch.finfo / torch.iinfo: classes, called with a dtype
iinfo = _dtypes.IntInfo

__version__ = "0.1.0"


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(input: Tensor) -> bool:
    return input.is_floating_point()


def __getattr__(name):
    # Submodules that are loaded on first use keep `import tinyml` fast.
    import importlib

    if name in ("nn", "optim", "testing", "backends", "data", "profiler", "viz", "memory", "cuda", "autograd",
                "models", "train", "io", "utils", "fft", "distributed", "linalg", "distributions", "special"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'tinyml' has no attribute {name!r}")
