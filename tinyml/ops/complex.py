"""Complex tensors: the parts, the polar form, conjugation and the (..., 2) real layout.

complex64 / complex128 tensors live on the cpu device (numpy's complex arrays); their arithmetic is
the elementwise, unary and reduce ops', whose complex formulas are in `_complex_grad.py`.
Gradients follow PyTorch's convention: for a real loss L of z = x + iy, z.grad = dL/dx + i dL/dy.

    complex(re, im) = re + i im            d: (Re g, Im g)
    polar(r, theta) = r cos theta + i r sin theta   (complex() of real ops)
    real(z) = x       (a view)             d: g, as a complex tensor
    imag(z) = y       (a view)             d: i g
    view_as_real(z)   (..., 2) float view  d: view_as_complex(g)
    view_as_complex(x)  complex view of (..., 2), last dim of stride 1   d: view_as_real(g)
    conj(z) = x - i y                      d: conj(g)
    angle(z) = atan2(y, x)                 d: g i z / |z|^2  (0 at 0; 0 for a real input)

PyTorch's conj is a lazy view with a conjugate bit; tinyml's is a copy (conj_physical), so
`is_conj()` is always False and `resolve_conj()` returns the tensor.
"""
from __future__ import annotations

import builtins

from .. import dtypes as _dt
from ..autograd import Function
from ..backends import run
from ..dtypes import cdouble, cfloat, complex64, complex128, get_default_complex_dtype
from ..tensor import Tensor
from ._broadcast import prepare

__all__ = ["angle", "cdouble", "cfloat", "complex", "complex64", "complex128", "conj", "conj_physical",
           "get_default_complex_dtype", "imag", "is_complex", "polar", "real", "resolve_conj",
           "view_as_complex", "view_as_real"]


def _join(ctx, out: Tensor) -> Tensor:
    # autograd links floating outputs only; see _complex_grad.join_graph (which imports this module)
    if True in ctx.needs_input_grad:
        out.requires_grad, out.grad_fn, out._output_nr = True, ctx, 0
    return out


def _tensor(name: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
    return x


def _complex_only(name: str, z) -> Tensor:
    if not _tensor(name, z).dtype.is_complex:
        raise RuntimeError(f"{name}: expected a complex tensor (complex64 or complex128), got {z.dtype}")
    return z


class Real(Function):
    @staticmethod
    def forward(ctx, z):
        return z._make_view(run("real", z))

    @staticmethod
    def backward(ctx, g):
        return g.to(g.dtype.to_complex())


class Imag(Function):
    @staticmethod
    def forward(ctx, z):
        return z._make_view(run("imag", z))

    @staticmethod
    def backward(ctx, g):
        return complex(g.new_zeros(g.shape), g)


class ViewAsReal(Function):
    @staticmethod
    def forward(ctx, z):
        return z._make_view(run("view_as_real", z))

    @staticmethod
    def backward(ctx, g):
        return ViewAsComplex.apply(g.contiguous())


class ViewAsComplex(Function):
    @staticmethod
    def forward(ctx, x):
        return _join(ctx, x._make_view(run("view_as_complex", x)))

    @staticmethod
    def backward(ctx, g):
        return ViewAsReal.apply(g)


class Conj(Function):
    @staticmethod
    def forward(ctx, z):
        return _join(ctx, run("conj", z))

    @staticmethod
    def backward(ctx, g):
        return Conj.apply(g)


class Complex(Function):
    @staticmethod
    def forward(ctx, re, im):
        return _join(ctx, run("complex", re, im))

    @staticmethod
    def backward(ctx, g):
        need = ctx.needs_input_grad
        return (Real.apply(g) if need[0] else None), (Imag.apply(g) if need[1] else None)


class Angle(Function):
    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return run("angle", z)

    @staticmethod
    def backward(ctx, g):
        z = ctx.saved_tensors[0]
        if not z.dtype.is_complex:
            return g * 0
        r2 = Real.apply(z * Conj.apply(z))  # |z|^2
        return g * (z * 1j) / (r2 + (r2 == 0))  # 0 at z = 0, where z i = 0 over a divisor of 1


def real(input: Tensor) -> Tensor:
    """The real part, a view (torch.real); a real tensor is returned as it is."""
    return Real.apply(input) if _tensor("real", input).dtype.is_complex else input


def _write_part(part: Tensor, value) -> None:
    if isinstance(value, Tensor):
        part.copy_(value)
    else:
        part.fill_(value)


def set_real(self: Tensor, value) -> None:
    """`z.real = value`: writes value (a tensor, broadcast, or a number) into the real parts."""
    _write_part(real(self), value)


def set_imag(self: Tensor, value) -> None:
    """`z.imag = value`: writes value into the imaginary parts of a complex tensor."""
    _write_part(imag(self), value)


def imag(input: Tensor) -> Tensor:
    """The imaginary part, a view (torch.imag); real tensors have none."""
    if not _tensor("imag", input).dtype.is_complex:
        raise RuntimeError(f"imag is not implemented for tensors with non-complex dtypes (got {input.dtype})")
    return Imag.apply(input)


def view_as_real(input: Tensor) -> Tensor:
    """A float view of shape (..., 2) holding (real, imaginary) pairs (torch.view_as_real)."""
    _tensor("view_as_real", input)
    if not input.dtype.is_complex:
        raise RuntimeError(f"view_as_real is only supported for complex tensors, got {input.dtype}")
    return ViewAsReal.apply(input)


def view_as_complex(input: Tensor) -> Tensor:
    """The complex view of a float32/float64 tensor of shape (..., 2) (torch.view_as_complex): its
    last dim must have stride 1 and every other stride must be even."""
    _tensor("view_as_complex", input)
    if input.dtype not in (_dt.float32, _dt.float64):
        raise RuntimeError(f"view_as_complex is only supported for float32 and float64 tensors, but got a "
                           f"tensor of scalar type: {input.dtype}")
    if input.ndim == 0 or input.shape[-1] != 2:
        raise RuntimeError(f"Tensor must have a last dimension of size 2, got shape {tuple(input.shape)}")
    strides = input.stride()
    if strides[-1] != 1:
        raise RuntimeError(f"Tensor must have a last dimension with stride 1, got strides {strides}")
    if any(s % 2 for s in strides[:-1]) or input.storage_offset() % 2:
        raise RuntimeError(f"Tensor must have a stride divisible by 2 for all but last dimension and an even "
                           f"storage offset, got strides {strides}, offset {input.storage_offset()}")
    return ViewAsComplex.apply(input)


def conj(input: Tensor) -> Tensor:
    """The complex conjugate x - iy (a copy: torch.conj_physical); a real tensor is returned as it is."""
    return Conj.apply(input) if _tensor("conj", input).dtype.is_complex else input


conj_physical = conj


def resolve_conj(input: Tensor) -> Tensor:
    """The tensor itself: tinyml's conj is never lazy, so there is no conjugate bit to resolve."""
    return _tensor("resolve_conj", input)


def complex(real: Tensor, imag: Tensor) -> Tensor:
    """real + i imag from two float32 (-> complex64) or float64 (-> complex128) tensors of one dtype,
    broadcast (torch.complex)."""
    for name, t in (("real", real), ("imag", imag)):
        if not isinstance(t, Tensor) or t.dtype not in (_dt.float32, _dt.float64):
            got = t.dtype if isinstance(t, Tensor) else type(t).__name__
            raise TypeError(f"complex: expected `{name}` to be a float32 or float64 tensor, got {got}")
    if real.dtype is not imag.dtype:
        raise RuntimeError(f"complex: expected `real` and `imag` to have the same dtype, but got "
                           f"real.dtype = {real.dtype} and imag.dtype = {imag.dtype}")
    re, im = prepare(real, imag, "complex")
    return Complex.apply(re, im)


def polar(abs: Tensor, angle: Tensor) -> Tensor:
    """abs (cos angle + i sin angle) (torch.polar)."""
    return complex(abs * angle.cos(), abs * angle.sin())


def angle(input: Tensor) -> Tensor:
    """The argument atan2(imag, real) in (-pi, pi]; for real tensors 0, or pi where negative (NaN kept)."""
    x = _tensor("angle", input)
    if not (x.dtype.is_complex or x.dtype.is_floating_point):
        x = x.to(_dt.get_default_dtype())
    return Angle.apply(x)


def is_complex(input: Tensor) -> builtins.bool:
    """True for complex64 and complex128 tensors."""
    return _tensor("is_complex", input).dtype.is_complex
