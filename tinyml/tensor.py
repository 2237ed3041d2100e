"""Tensor: a backend array (numpy on cpu, device memory on cuda) plus autograd state.

Shape, strides and storage offset are those of the backend array; views share storage and one
version counter (`_version`, a one-element list) with their base, which in-place ops bump so
that autograd can catch a saved tensor modified before backward.

This module is the data structure only and imports no op: the ops import Tensor. The methods
that run ops (building from data, `to`, `backward`, `storage_offset`, the Python operators and
every op method such as `x.exp()`) are bound onto the class by `tinyml/tensor_methods.py`, which
`import tinyml` loads before it returns.
"""
from __future__ import annotations

import math
import weakref

import numpy as np

from . import dtypes as _dt
from ._grad_checks import check_grad_assignment
from ._printing import format_array
from .device import CPU, as_device, device
from .size import Size

_new_size = tuple.__new__  # Size(shape) without re-checking numpy's ints: shape is read on every op


class Tensor:
    __slots__ = ("_data", "device", "dtype", "requires_grad", "_grad", "grad_fn", "_output_nr", "_version",
                 "_base", "_hooks", "_is_param", "__weakref__")  # _is_param: set only by nn.Parameter
    __array_priority__ = 1000  # numpy defers `ndarray + Tensor` to Tensor.__radd__

    # __init__(data, dtype, device, requires_grad) is bound by tensor_methods: it runs from_host

    def _init(self, arr, dev: device) -> None:
        self._data = arr
        self.device = dev
        self.dtype = _dt._FROM_NP[arr.dtype]
        self.requires_grad = False
        self._grad = None
        self.grad_fn = None
        self._output_nr = 0
        self._version = [0]
        self._base = None
        self._hooks = None

    @classmethod
    def _make(cls, arr, dev: device = CPU) -> Tensor:
        """Wrap a backend array without copying (the kernels' results)."""
        t = object.__new__(cls)
        if type(arr) is not np.ndarray and dev is CPU:
            arr = np.asarray(arr)  # numpy returns scalars for 0-d results
        # _init's body, inlined: this runs once per op result
        t._data = arr
        t.device = dev
        t.dtype = _dt._FROM_NP[arr.dtype]
        t.requires_grad = False
        t._grad = None
        t.grad_fn = None
        t._output_nr = 0
        t._version = [0]
        t._base = None
        t._hooks = None
        return t

    def _make_view(self, arr) -> Tensor:
        """A tensor over `arr`, a view of this tensor's storage: it shares the version counter."""
        t = Tensor._make(arr, self.device)
        t._version = self._version
        t._base = self if self._base is None else self._base
        return t

    # ---- metadata -------------------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return _new_size(Size, self._data.shape)

    def size(self, dim: int | None = None):
        return _new_size(Size, self._data.shape) if dim is None else \
            self._data.shape[_wrap_dim(dim, self._data.ndim)]

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return math.prod(self._data.shape)

    nelement = numel

    def element_size(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.numel() * self.dtype.itemsize

    def stride(self, dim: int | None = None):
        st = tuple(s // self.dtype.itemsize for s in self._data.strides)
        return st if dim is None else st[_wrap_dim(dim, self.ndim)]

    def is_contiguous(self) -> bool:
        return bool(self._data.flags["C_CONTIGUOUS"]) if self.device is CPU else self._data.is_contiguous()

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def is_complex(self) -> bool:
        return self.dtype.is_complex

    def is_conj(self) -> bool:
        return False  # conj() is a copy in tinyml (tinyml/ops/complex.py): no lazy conjugate bit

    @property
    def T(self) -> Tensor:
        return self.permute(*range(self.ndim - 1, -1, -1))

    @property
    def mT(self) -> Tensor:
        return self.transpose(-2, -1)

    @property
    def data(self) -> Tensor:
        return self.detach()

    @data.setter
    def data(self, other: Tensor) -> None:
        if not isinstance(other, Tensor):
            raise TypeError(f"Tensor.data must be set to a Tensor, got {type(other).__name__}")
        self._data, self.device, self.dtype = other._data, other.device, other.dtype

    # ---- autograd -------------------------------------------------------------------------
    @property
    def grad(self) -> Tensor | None:
        """The accumulated gradient (None until a backward reaches this tensor)."""
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        # as torch: None, or a Tensor of this tensor's device, dtype and shape (the engine writes _grad)
        if value is not None:
            check_grad_assignment(self, value)
        self._grad = value

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not self.dtype.is_differentiable:
            raise RuntimeError(f"only Tensors of floating point and complex dtype can require gradients, got "
                               f"dtype {self.dtype}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) is only valid on leaf tensors; use detach() instead")
        self.requires_grad = requires_grad
        return self

    def detach(self) -> Tensor:
        """A tensor sharing this one's storage, cut from the graph."""
        return self._make_view(self._data)

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self.requires_grad = False
        return self

    def register_hook(self, hook):
        """Call `hook(grad)` when this tensor's gradient is computed; a Tensor it returns (of the
        gradient's shape, dtype and device) replaces the gradient, None keeps it."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is None:
            self._hooks = (self._hooks or []) + [hook]
            hooks = self._hooks
        else:
            pre = self.grad_fn._pre_hooks
            if pre is None:
                pre = self.grad_fn._pre_hooks = {}
            hooks = pre.setdefault(self._output_nr, [])
            hooks.append(hook)
        return _RemovableHandle(hooks, hook)

    def retain_grad(self) -> None:
        """Keep `.grad` for this non-leaf tensor after backward."""
        if self.grad_fn is None:
            return
        ref = weakref.ref(self)

        def store(grad):
            t = ref()
            if t is not None:
                if grad.dtype is not t.dtype:  # a Function's backward gave another dtype: cast, as at leaves
                    grad = grad.to(t.dtype)
                t.grad = grad.detach().clone() if t._grad is None else (t._grad + grad).detach()

        self.register_hook(store)

    # ---- conversion -----------------------------------------------------------------------
    def numpy(self, *, force: bool = False) -> np.ndarray:
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy()")
        if self.device.type != "cpu":
            if not force:
                raise TypeError(f"can't convert {self.device} tensor to numpy; use Tensor.cpu() first")
            return self.cpu().numpy(force=True)
        return self._data

    def __array__(self, dtype=None, copy=None):
        arr = self.detach().cpu()._data
        return arr if dtype is None else arr.astype(dtype)

    def tolist(self):
        return self.numpy(force=True).tolist()

    def item(self):
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements (shape {tuple(self.shape)}) cannot be "
                               "converted to a Python scalar")
        return self.numpy(force=True).reshape(()).item()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __complex__(self):
        return complex(self.item())

    def __index__(self):
        if self.dtype.is_differentiable:  # floating or complex
            raise TypeError("only integer tensors of a single element can be used as an index, got "
                            f"{self.dtype}")
        return int(self.item())

    def __bool__(self):
        if self.numel() != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.numel()} elements is ambiguous")
        return bool(self.item())

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    # identity hash (== is elementwise); the C slot, since backward keys dicts by leaf tensors
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        arr = self.numpy(force=True)
        body = format_array(arr.astype(np.float32) if self.dtype is _dt.bfloat16 else arr)
        extras = []
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self.dtype not in (_dt.float32, _dt.int64, _dt.bool_, _dt.complex64) or self.numel() == 0:
            extras.append(f"dtype={self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name()}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device=None) -> Tensor:
        return self.to(as_device(device) if isinstance(device, (str, int)) else device or "cuda")

    def type_as(self, other: Tensor) -> Tensor:
        """self cast to other's dtype (torch.Tensor.type_as)."""
        return self.to(other.dtype)

    def type(self, dtype=None):
        if dtype is None:
            return f"tinyml.{self.dtype.name}"
        return self.to(dtype)

    def float(self):
        return self.to(_dt.float32)

    def double(self):
        return self.to(_dt.float64)

    def half(self):
        return self.to(_dt.float16)

    def bfloat16(self):
        return self.to(_dt.bfloat16)

    def long(self):
        return self.to(_dt.int64)

    def int(self):
        return self.to(_dt.int32)

    def bool(self):
        return self.to(_dt.bool_)


class _RemovableHandle:
    def __init__(self, hooks: list, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self) -> None:
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def _wrap_dim(dim: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got "
                         f"{dim})")
    return dim + n if dim < 0 else dim


def parse_to_args(args: tuple, kwargs: dict, accepts_copy: bool = True) -> tuple:
    """The target of `Tensor.to` and `Module.to`, as PyTorch parses it: (device or None, dtype or
    None, copy).

        to(device=None, dtype=None, non_blocking=False, copy=False)
        to(dtype, non_blocking=False, copy=False)
        to(tensor, non_blocking=False, copy=False)      tensor's device and dtype

    `float`, `int` and `bool` name dtypes (the default float, int64, bool); non_blocking is
    accepted and has no effect (copies are synchronous). `kwargs` is consumed."""
    dev, dt = kwargs.pop("device", None), kwargs.pop("dtype", None)
    flags = [a for a in args if type(a) is bool]  # positional non_blocking, then copy
    if len(flags) > 2:
        raise TypeError(f"to() takes at most two flags (non_blocking, copy), got {len(flags)}: {flags}")
    kwargs.pop("non_blocking", None)
    if not accepts_copy and ("copy" in kwargs or len(flags) == 2):
        raise TypeError(".to() does not accept copy argument")
    copy = bool(kwargs.pop("copy", flags[1] if len(flags) == 2 else False))
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if type(a) is bool:
            continue
        if isinstance(a, Tensor):
            dev, dt = a.device, a.dtype
        elif isinstance(a, _dt.dtype) or a in (float, int, bool):
            dt = a
        else:
            dev = a
    return (None if dev is None else as_device(dev)), (None if dt is None else _dt.as_dtype(dt)), copy
