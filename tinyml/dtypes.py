"""dtypes and PyTorch's type promotion.

A `dtype` wraps a numpy dtype (bfloat16 through ml_dtypes, imported on first use: its import takes
half a second in some releases, and `import tinyml` must stay fast). Promotion follows PyTorch:
categories bool < integer < floating < complex (`dtype.category_rank` 0 < 1 < 2 < 3); within an
expression, tensors with dimensions decide the result unless a 0-d tensor or a Python scalar belongs
to a higher category, in which case the 0-d tensor's dtype (or the default dtype for a Python
scalar) is used; a complex one meeting floating tensors with dimensions gives the complex dtype of
their precision (float64 + complex64 -> complex128, as torch's combine_categories).

complex64 / complex128 (numpy's) hold pairs of float32 / float64; their ops run on the cpu device.
"""
from __future__ import annotations

import builtins

import numpy as np

_BOOL, _INTEGER, _FLOATING, _COMPLEX = 0, 1, 2, 3  # PyTorch's promotion categories, in rising order


class dtype:
    """A tinyml element type: `tinyml.float32`, `tinyml.int64`, ...

    Its kind is one of four flags, `is_bool`, `is_integer` (signed or unsigned, bool excluded),
    `is_floating_point` and `is_complex` (not floating point, as in torch); `category_rank` orders
    the kinds for PyTorch's type promotion, bool 0 < integer 1 < floating 2 < complex 3 (a result
    takes the higher category). `is_differentiable`: floating or complex, the dtypes a gradient
    can flow through."""

    __slots__ = ("name", "np", "itemsize", "category_rank", "is_bool", "is_integer", "is_floating_point",
                 "is_complex", "is_differentiable")

    def __init__(self, name: str, np_dtype, category_rank: builtins.int,
                 itemsize: builtins.int | None = None):
        self.name = name
        if np_dtype is not None:  # None: resolved on first access of .np (see __getattr__)
            self.np = np.dtype(np_dtype)
        self.itemsize = self.np.itemsize if itemsize is None else itemsize
        self.category_rank = category_rank
        # plain attributes, not properties: Function.apply reads is_floating_point once per op
        self.is_bool = category_rank == _BOOL
        self.is_integer = category_rank == _INTEGER
        self.is_floating_point = category_rank == _FLOATING
        self.is_complex = category_rank == _COMPLEX
        self.is_differentiable = category_rank >= _FLOATING

    def __getattr__(self, attr: str):
        # Called only when the `np` slot is still empty: bfloat16, whose numpy type lives in
        # ml_dtypes. Loading it here keeps `import tinyml` fast; later reads hit the slot directly.
        if attr != "np":
            raise AttributeError(attr)
        self.np = np.dtype(_ml_dtypes().bfloat16)
        return self.np

    @property
    def is_signed(self) -> builtins.bool:
        return self.name not in ("bool", "uint8")

    def to_complex(self) -> dtype:
        """The complex dtype of this one's precision (torch.dtype.to_complex): float32 -> complex64,
        float64 -> complex128; a complex dtype is its own."""
        if self.is_complex:
            return self
        if self.name in _COMPLEX_OF:
            return _NAMES[_COMPLEX_OF[self.name]]
        raise RuntimeError(f"{self}.to_complex(): no complex dtype for {self} (tinyml has complex64 and "
                           f"complex128, of float32 and float64)")

    def to_real(self) -> dtype:
        """The real dtype of a complex one (torch.dtype.to_real): complex64 -> float32,
        complex128 -> float64; a real dtype is its own."""
        return _NAMES[_REAL_OF[self.name]] if self.is_complex else self

    def __repr__(self) -> str:
        return f"tinyml.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


float32 = dtype("float32", np.float32, _FLOATING)
float64 = dtype("float64", np.float64, _FLOATING)
float16 = dtype("float16", np.float16, _FLOATING)
bfloat16 = dtype("bfloat16", None, _FLOATING, itemsize=2)
int64 = dtype("int64", np.int64, _INTEGER)
int32 = dtype("int32", np.int32, _INTEGER)
int16 = dtype("int16", np.int16, _INTEGER)
int8 = dtype("int8", np.int8, _INTEGER)
uint8 = dtype("uint8", np.uint8, _INTEGER)
bool_ = dtype("bool", np.bool_, _BOOL)
complex64 = dtype("complex64", np.complex64, _COMPLEX)
complex128 = dtype("complex128", np.complex128, _COMPLEX)
float = float32  # PyTorch aliases
double = float64
half = float16
long = int64
int = int32
cfloat = complex64
cdouble = complex128

ALL = (float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool_, complex64, complex128)
_NAMES = {d.name: d for d in ALL}
# torch's to_complex / to_real; float16 and bfloat16 would be complex32, which tinyml does not have
_COMPLEX_OF = {"float32": "complex64", "float64": "complex128"}
_REAL_OF = {"complex64": "float32", "complex128": "float64"}


class _NumpyToDtype(dict):
    """numpy dtype -> tinyml dtype. bfloat16 joins on first sight (ml_dtypes is loaded by then:
    an array of that type exists); any other miss is a KeyError, as for a plain dict."""

    def __missing__(self, np_dtype):
        if np_dtype.name == "bfloat16" and np_dtype == bfloat16.np:
            self[np_dtype] = bfloat16
            return bfloat16
        raise KeyError(np_dtype)


_FROM_NP = _NumpyToDtype({d.np: d for d in ALL if d is not bfloat16})
_default_float = float32


def _ml_dtypes():
    """The ml_dtypes module, imported on first use (bfloat16 arrays, finfo of bfloat16)."""
    import ml_dtypes

    return ml_dtypes


def _by_name(name: str) -> dtype:
    return _NAMES[name]


def is_half(np_dtype) -> builtins.bool:
    """True for numpy float16 and bfloat16: the types whose math runs in float32."""
    return np_dtype == np.float16 or np_dtype.name == "bfloat16"


def finfo(np_dtype):
    """numpy's finfo, bfloat16 included (through ml_dtypes, loaded only for it)."""
    return _ml_dtypes().finfo(np_dtype) if np_dtype.name == "bfloat16" else np.finfo(np_dtype)


def from_numpy(np_dtype) -> dtype:
    """The tinyml dtype of a numpy dtype; a clear TypeError for the ones we do not support."""
    try:
        d = _FROM_NP[np.dtype(np_dtype)]
    except KeyError:
        d = None
    if d is None:
        names = ", ".join(x.name for x in ALL)
        raise TypeError(f"numpy dtype {np.dtype(np_dtype)} is not supported by tinyml (supported: {names})")
    return d


def as_dtype(d) -> dtype:
    """Accepts a tinyml dtype, a numpy dtype/type or a name such as "float32"."""
    if isinstance(d, dtype):
        return d
    if isinstance(d, str):
        if d in _NAMES:
            return _NAMES[d]
        raise TypeError(f"unknown dtype {d!r}; expected one of {', '.join(_NAMES)}")
    if d is builtins.bool:
        return bool_
    if d is builtins.float:
        return _default_float
    if d is builtins.int:
        return int64
    if d is builtins.complex:
        return get_default_complex_dtype()
    return from_numpy(d)


def get_default_dtype() -> dtype:
    return _default_float


def get_default_complex_dtype() -> dtype:
    """The dtype of Python complex numbers: complex128 when the default float is float64, else
    complex64 (as torch)."""
    return complex128 if _default_float is float64 else complex64


def set_default_dtype(d) -> None:
    global _default_float
    d = as_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"set_default_dtype: only floating dtypes can be the default, got {d}")
    _default_float = d


def promote_types(a: dtype, b: dtype) -> dtype:
    """The smallest dtype both `a` and `b` convert to (torch.promote_types)."""
    if a is b:
        return a
    if a.category_rank != b.category_rank:
        high, low = (a, b) if a.category_rank > b.category_rank else (b, a)
        if high.is_complex and low.is_floating_point and low.itemsize > high.itemsize // 2:
            return complex128  # float64 + complex64: the complex type holding both precisions
        return high
    if a.is_floating_point or a.is_complex:
        if {a.name, b.name} == {"float16", "bfloat16"}:
            return float32
        return a if a.itemsize >= b.itemsize else b
    return from_numpy(np.promote_types(a.np, b.np))


def scalar_dtype(value) -> dtype:
    """The dtype a Python scalar takes on its own: bool, int64, the default float or the default
    complex dtype."""
    if isinstance(value, (builtins.bool, np.bool_)):
        return bool_
    if isinstance(value, (builtins.int, np.integer)):
        return int64
    if isinstance(value, (builtins.complex, np.complexfloating)):
        return get_default_complex_dtype()
    return _default_float


def _combine_categories(higher: dtype | None, lower: dtype | None) -> dtype | None:
    """torch's combine_categories: the result of a higher-priority group's dtype (`higher`) meeting
    a lower-priority group's: the lower one wins only with a higher category; a complex one over
    floating keeps the floating one's precision (float32 + complex128 0-d -> complex64)."""
    if higher is None:
        return lower
    if lower is None or lower.category_rank <= higher.category_rank:
        return higher
    if lower.is_complex and higher.is_floating_point:
        return higher.to_complex() if higher.name in _COMPLEX_OF else complex64
    if lower.is_floating_point and not higher.is_bool:
        return promote_types(higher, lower)
    return lower


def result_type(*operands) -> dtype:
    """PyTorch's result dtype for an expression over tensors and Python scalars.

    Three priority groups: tensors with dimensions, 0-d tensors, Python scalars. The result is
    the promoted dtype of the first group; a later group overrides it only when its category
    (bool < int < float < complex) is higher (`_combine_categories`).
    """
    from .tensor import Tensor  # at call time: tensor.py imports this module

    groups: list[dtype | None] = [None, None, None]
    for op in operands:
        if isinstance(op, Tensor):
            g, d = (0 if op.ndim else 1), op.dtype
        else:
            g, d = 2, scalar_dtype(op)
        groups[g] = d if groups[g] is None else promote_types(groups[g], d)
    return _combine_categories(groups[0], _combine_categories(groups[1], groups[2]))


def _fmt(x) -> str:
    return f"{x:g}"


class FloatInfo:
    """torch.finfo (exported as tinyml.finfo): the limits of a floating dtype (default: the default
    dtype). bits, eps (2^-mantissa bits), max, min (= -max), tiny and smallest_normal (the smallest
    positive normal number), resolution (10^-decimal digits), dtype (the name, as torch's)."""

    __slots__ = ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype")

    def __init__(self, type: dtype | None = None):
        d = _default_float if type is None else as_dtype(type)
        d = d.to_real()  # torch.finfo(complex64) describes its float32 parts
        if not d.is_floating_point:
            raise TypeError(f"tinyml.finfo() requires a floating point input type, got {d}. Use "
                            f"tinyml.iinfo to handle '{d}'")
        info = finfo(d.np)
        self.bits = d.itemsize * 8
        self.eps, self.max = builtins.float(info.eps), builtins.float(info.max)
        self.min = builtins.float(info.min)
        self.tiny = self.smallest_normal = builtins.float(info.smallest_normal)
        self.resolution = 10.0 ** -builtins.int(info.precision)  # torch: a plain power of ten
        self.dtype = d.name

    def __repr__(self) -> str:
        return (f"finfo(resolution={_fmt(self.resolution)}, min={_fmt(self.min)}, max={_fmt(self.max)}, "
                f"eps={_fmt(self.eps)}, smallest_normal={_fmt(self.smallest_normal)}, "
                f"tiny={_fmt(self.tiny)}, dtype={self.dtype})")


class IntInfo:
    """torch.iinfo (exported as tinyml.iinfo): bits, max, min and dtype (the name) of an integer dtype."""

    __slots__ = ("bits", "max", "min", "dtype")

    def __init__(self, type: dtype):
        d = as_dtype(type)
        if d.is_bool:
            raise TypeError("tinyml.bool is not supported by tinyml.iinfo")
        if not d.is_integer:
            raise TypeError(f"tinyml.iinfo() requires an integer input type, got {d}. Use tinyml.finfo to "
                            f"handle '{d}'")
        info = np.iinfo(d.np)
        self.bits, self.dtype = d.itemsize * 8, d.name
        self.max, self.min = builtins.int(info.max), builtins.int(info.min)

    def __repr__(self) -> str:
        return f"iinfo(min={_fmt(self.min)}, max={_fmt(self.max)}, dtype={self.dtype})"  # torch's %g
