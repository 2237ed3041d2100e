"""Reference kernels for complex tensors (complex64 / complex128 numpy arrays), the cpu device's only
ones: the C++ and Triton backends take no complex data.

    real(z), imag(z)       views of the real / imaginary parts (float32 / float64, z's strides)
    view_as_real(z)        a (..., 2) float view of z: strides z's (in floats: 2 s) and 1 for the pair
    view_as_complex(x)     the complex view of a (..., 2) float array whose last dim has stride 1
    conj(z)                x - iy (a copy; a real array is returned as it is)
    complex(re, im)        re + i im, of the complex dtype of re's float dtype
    angle(z)               atan2(y, x), in z's real dtype (for real x: 0 or pi, NaN kept)
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["angle", "complex", "conj", "imag", "real", "view_as_complex", "view_as_real"]

_COMPLEX_OF = {np.dtype(np.float32): np.complex64, np.dtype(np.float64): np.complex128}


def real(z):
    return z.real


def imag(z):
    return z.imag


def view_as_real(z):
    if type(z) is not np.ndarray:  # a numpy scalar's .real is a copy: no storage to view
        raise TypeError(f"view_as_real: expected a numpy array, got {type(z).__name__}")
    parts = z.real  # a float view with z's start and strides
    return as_strided(parts, z.shape + (2,), z.strides + (parts.itemsize,), writeable=z.flags.writeable)


def view_as_complex(x):
    # numpy reinterprets the contiguous last dim (2 floats) as one complex element
    return x.view(_COMPLEX_OF[x.dtype])[..., 0]


def conj(z):
    return np.conj(z) if z.dtype.kind == "c" else z


def complex(re, im):
    out = np.empty(re.shape, dtype=_COMPLEX_OF[re.dtype])
    out.real, out.imag = re, im
    return out


def angle(z):
    return np.angle(z).astype(z.real.dtype, copy=False)
