"""Creation ops (tensor, zeros, ones, full, arange, rand, ...) and dtype/device moves.

Names and signatures follow PyTorch: sizes as varargs or one sequence, `dtype=`, `device=`,
`requires_grad=`. Random tensors come from `tinyml.random`'s global generator, or from the
`generator=` given (a tinyml.Generator).
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import dtypes as _dt
from .. import random as _random
from .._printing import set_printoptions  # noqa: F401  (at tinyml.set_printoptions through ops' __all__)
from ..autograd import Function
from ..backends import dispatch, run, run_on
from ..device import as_device
from ..tensor import Tensor
from ._complex_grad import join_graph

__all__ = ["tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "arange", "linspace", "eye",
           "logspace", "rand", "randn", "randint", "randperm", "normal", "zeros_like", "ones_like",
           "full_like", "empty_like", "rand_like", "randn_like", "randint_like", "cast", "to_device", "clone",
           "contiguous", "manual_seed", "set_printoptions", "tril_indices", "triu_indices"]

manual_seed = _random.manual_seed


def _host_array(data, dtype) -> np.ndarray:
    """`data` (nested lists, scalars, numpy arrays, tensors) as a host numpy array of tinyml dtype."""
    if isinstance(data, Tensor):
        arr = data.detach().cpu()._data
    elif isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flat(data)):
        arr = np.array([_host_array(x, None) for x in data])
    else:
        arr = np.asarray(data)
    if dtype is not None:
        return np.array(arr, dtype=_dt.as_dtype(dtype).np)
    typed = isinstance(data, (np.ndarray, np.generic, Tensor))  # numpy scalars keep their dtype, as in torch
    if arr.dtype.kind == "f" and not typed:
        return arr.astype(_dt.get_default_dtype().np)  # Python floats take the default dtype
    if arr.dtype.kind in "iu" and not typed:
        return arr.astype(np.int64)
    if arr.dtype.kind == "c" and not typed:
        return arr.astype(_dt.get_default_complex_dtype().np)  # Python complex numbers, as torch
    if arr.dtype.kind in "OUS":
        raise TypeError(f"tinyml.tensor: cannot build a tensor from {type(data).__name__} with numpy dtype "
                        f"{arr.dtype}")
    _dt.from_numpy(arr.dtype)  # raises a clear error for unsupported numpy dtypes
    return np.array(arr, copy=True)


def _flat(xs):
    for x in xs:
        if isinstance(x, (list, tuple)):
            yield from _flat(x)
        else:
            yield x


def _to_backend_array(data, dtype, device):
    dev = as_device(device)
    host = _host_array(data, dtype)
    if dev.type != "cpu" and host.dtype.kind == "c":
        _complex_off_cpu(_dt.from_numpy(host.dtype), dev)
    return dispatch("from_host", dev.type)(host), dev


def _complex_off_cpu(d: _dt.dtype, dev) -> None:
    raise TypeError(f"complex tensors live on the cpu device only: got dtype {d} for device {dev} (the C++ "
                    f"and Triton kernels take no complex data)")


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of `data`."""
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype) if (dtype or device) else data
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A cpu tensor sharing memory with `array` (torch.from_numpy)."""
    _dt.from_numpy(array.dtype)
    return Tensor._make(array)


def _size(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    size = tuple(int(s) for s in size)
    if any(s < 0 for s in size):
        raise RuntimeError(f"Trying to create tensor with negative dimension: {size}")
    return size


def _finish(t: Tensor, requires_grad: bool) -> Tensor:
    return t.requires_grad_(True) if requires_grad else t


def _dtype_or_default(dtype):
    return _dt.get_default_dtype() if dtype is None else _dt.as_dtype(dtype)


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if dtype is None:
        dtype = _dt.scalar_dtype(fill_value)
    d = _dt.as_dtype(dtype)
    if d.is_complex and device is not None and as_device(device).type != "cpu":
        _complex_off_cpu(d, as_device(device))
    return _finish(run_on(as_device(device), "full", tuple(_size((size,))), fill_value, d.np), requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return full(_size(size), 0, dtype=_dtype_or_default(dtype), device=device, requires_grad=requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return full(_size(size), 1, dtype=_dtype_or_default(dtype), device=device, requires_grad=requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    d = _dtype_or_default(dtype)
    return _finish(run_on(as_device(device), "empty", _size(size), d.np), requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if dtype is None:
        dtype = _dt.result_type(start, end, step)
    d = _dt.as_dtype(dtype)
    return _finish(run_on(as_device(device), "arange", start, end, step, d.np), requires_grad)


def linspace(start, end, steps: int, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if steps < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
    d = _dtype_or_default(dtype)
    return _finish(run_on(as_device(device), "linspace", start, end, int(steps), d.np), requires_grad)


def eye(n: int, m: int | None = None, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    d = _dtype_or_default(dtype)
    return _finish(run_on(as_device(device), "eye", n, n if m is None else m, d.np), requires_grad)


def _from_generator(host: np.ndarray, dtype, device, requires_grad) -> Tensor:
    d = _dtype_or_default(dtype)
    return _finish(Tensor(host.astype(d.np, copy=False), device=device), requires_grad)


def _samples(draw, size, dtype, scale: float = 1.0) -> np.ndarray:
    """draw(size) in float64; for a complex dtype, independent real and imaginary draws, times scale."""
    if dtype is None or not _dt.as_dtype(dtype).is_complex:
        return draw(size)
    return (draw(size) + 1j * draw(size)) * scale


def rand(*size, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Uniform samples on [0, 1) (complex: real and imaginary parts each)."""
    g = _random.numpy_generator(generator)
    host = _samples(lambda s: g.random(s, dtype=np.float64), _size(size), dtype)
    return _from_generator(host, dtype, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Standard normal samples; complex ones have E|z|^2 = 1 (real and imaginary parts each N(0, 1/2),
    as torch)."""
    g = _random.numpy_generator(generator)
    host = _samples(g.standard_normal, _size(size), dtype, 0.5 ** 0.5)
    return _from_generator(host, dtype, device, requires_grad)


def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """Normal samples mean + std eps. Numbers need `size`; a tensor mean and/or std gives one sample per
    element of their broadcast shape, in the floating dtype and on the device of the tensor(s). The
    samples are not differentiable in mean and std (PyTorch's gradient for them is zero; use
    distributions.Normal(mean, std).rsample() for a reparameterised sample)."""
    g = _random.numpy_generator(generator)
    tensors = [t for t in (mean, std) if isinstance(t, Tensor)]
    if not tensors:
        if size is None:
            raise TypeError(f"normal(): with a number mean ({mean}) and std ({std}), the size argument is "
                            f"required")
        if std < 0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
        return _from_generator(g.normal(mean, std, _size((size,))), dtype, device, requires_grad)
    if size is not None:
        raise TypeError("normal(): size is only accepted with a number mean and std; the tensor mean / std "
                        "gives the shape")
    like = tensors[0]
    if not all(t.dtype.is_floating_point for t in tensors):
        raise RuntimeError(f"normal expects floating point mean and std, got {[t.dtype for t in tensors]}")
    mean_np, std_np = (t.detach().cpu().numpy().astype(np.float64) if isinstance(t, Tensor) else float(t)
                       for t in (mean, std))
    if np.any(np.asarray(std_np) < 0):
        raise RuntimeError(f"normal expects all elements of std >= 0.0, got min(std) = {np.min(std_np)}")
    shape = np.broadcast_shapes(np.shape(mean_np), np.shape(std_np))
    values = mean_np + std_np * g.standard_normal(shape)
    return _finish(Tensor(np.asarray(values).astype(like.dtype.np), device=like.device), requires_grad)


def _triangle_indices(which, row: int, col: int, offset: int, dtype, device) -> Tensor:
    if row < 0 or col < 0:
        raise RuntimeError(f"{which.__name__}: row ({row}) and col ({col}) must be non-negative")
    d = _dt.int64 if dtype is None else _dt.as_dtype(dtype)
    rows, cols = which(row, offset, col)
    return Tensor(np.stack([rows, cols]).astype(d.np).reshape(2, -1), device=device)


def tril_indices(row: int, col: int, offset: int = 0, *, dtype=None, device=None) -> Tensor:
    """The (2, N) row and column indices of the lower triangle (j <= i + offset) of a row x col matrix,
    row by row."""
    return _triangle_indices(np.tril_indices, row, col, offset, dtype, device)


def triu_indices(row: int, col: int, offset: int = 0, *, dtype=None, device=None) -> Tensor:
    """The (2, N) row and column indices of the upper triangle (j >= i + offset), row by row."""
    return _triangle_indices(np.triu_indices, row, col, offset, dtype, device)


def logspace(start, end, steps: int, base: float = 10.0, *, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """base ** linspace(start, end, steps), computed in float64 and cast to dtype."""
    d = _dtype_or_default(dtype)
    exponents = linspace(start, end, steps, dtype=_dt.float64, device=device)
    return _finish(((exponents * 0 + float(base)) ** exponents).to(d), requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """Integers uniform on [low, high); `randint(high, size)` as in PyTorch."""
    if size is None:
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if high <= low:
        raise RuntimeError(f"randint: expected low < high, got low={low}, high={high}")
    g = _random.numpy_generator(generator)
    host = g.integers(low, high, _size((size,)), dtype=np.int64)
    d = _dt.int64 if dtype is None else _dt.as_dtype(dtype)
    return _finish(Tensor(host.astype(d.np, copy=False), device=device), requires_grad)


def randperm(n: int, *, generator=None, dtype=None, device=None) -> Tensor:
    host = _random.numpy_generator(generator).permutation(int(n))
    return Tensor(host.astype((_dt.int64 if dtype is None else _dt.as_dtype(dtype)).np), device=device)



def zeros_like(t: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return zeros(tuple(t.shape), dtype=dtype or t.dtype, device=device or t.device,
                      requires_grad=requires_grad)


def ones_like(t: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return ones(tuple(t.shape), dtype=dtype or t.dtype, device=device or t.device,
                     requires_grad=requires_grad)


def empty_like(t: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return empty(tuple(t.shape), dtype=dtype or t.dtype, device=device or t.device,
                      requires_grad=requires_grad)


def full_like(t: Tensor, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return full(tuple(t.shape), fill_value, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def rand_like(t: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return rand(tuple(t.shape), dtype=dtype or t.dtype, device=device or t.device,
                     requires_grad=requires_grad)


def randn_like(t: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return randn(tuple(t.shape), dtype=dtype or t.dtype, device=device or t.device,
                      requires_grad=requires_grad)


def randint_like(t: Tensor, low, high=None, *, dtype=None, device=None) -> Tensor:
    return randint(low, high, tuple(t.shape), dtype=dtype or t.dtype, device=device or t.device)


# Tensor.new_*: methods only (tinyml/tensor_methods.py binds them), as in PyTorch; dtype and
# device default to self's, not to the global defaults.
def new_tensor(self: Tensor, data, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A copy of `data` as a new leaf tensor of self's dtype and device (unless given)."""
    return tensor(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def new_empty(self: Tensor, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return empty(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def new_zeros(self: Tensor, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return zeros(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def new_ones(self: Tensor, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return ones(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def new_full(self: Tensor, size, fill_value, *, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    return full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                requires_grad=requires_grad)


class Cast(Function):
    """y = x converted to `dtype`; the gradient is converted back to x's dtype."""

    @staticmethod
    def forward(ctx, x: Tensor, dtype: _dt.dtype) -> Tensor:
        ctx.in_dtype = x.dtype
        out = run("cast", x, dtype.np)
        return join_graph(ctx, out) if dtype.is_complex else out

    @staticmethod
    def backward(ctx, g: Tensor):
        d = ctx.in_dtype  # a complex gradient to a real input: its real part (the cast kernel takes it)
        if not d.is_differentiable:
            return None, None
        return (g if g.dtype is d else Cast.apply(g, d)), None


def cast(x: Tensor, dtype) -> Tensor:
    dtype = _dt.as_dtype(dtype)
    if x.dtype is dtype:
        return x
    if x.dtype.is_complex and not dtype.is_complex:
        warnings.warn("Casting complex values to real discards the imaginary part", UserWarning, stacklevel=3)
    return Cast.apply(x, dtype)


class ToDevice(Function):
    """A copy of x on another device; the gradient is copied back."""

    @staticmethod
    def forward(ctx, x: Tensor, dev) -> Tensor:
        ctx.src = x.device
        host = dispatch("to_host", x.device.type)(x._data)
        if dev.type == "cpu" and host is x._data:
            host = host.copy()
        return Tensor._make(dispatch("from_host", dev.type)(np.require(host, requirements='C')), dev)

    @staticmethod
    def backward(ctx, g: Tensor):
        return to_device(g, ctx.src), None


def to_device(x: Tensor, dev) -> Tensor:
    dev = as_device(dev)
    if dev.type == "cuda":
        if x.dtype.is_complex:
            _complex_off_cpu(x.dtype, dev)
        # at call time: only cuda users load the driver module; it raises a plain message without a GPU
        from ..backends import cuda as _cuda

        _cuda.ensure_available()
    return x if x.device == dev else ToDevice.apply(x, dev)


class Clone(Function):
    """A contiguous copy of x; the gradient passes through."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out = run("clone", x)
        return join_graph(ctx, out) if out.dtype.is_complex else out

    @staticmethod
    def backward(ctx, g: Tensor):
        return g


def clone(x: Tensor, *, memory_format=None) -> Tensor:
    return Clone.apply(x)


def contiguous(x: Tensor, memory_format=None) -> Tensor:
    return x if x.is_contiguous() else Clone.apply(x)


