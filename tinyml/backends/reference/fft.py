"""Reference kernels for the discrete Fourier transforms, numpy's pocketfft (numpy.fft).

tinyml has no complex dtype: a complex tensor is stored as a real one with a trailing dim of 2
(real, imaginary), torch.view_as_real's layout. `dim` is the transform's dim in the complex
shape (so never the trailing 2), `n` the signal length after zero-padding or cropping, `norm`
numpy's and torch's "backward" | "ortho" | "forward". With w = exp(-2 pi i / n):

    fft_c2c:  X_k = s sum_j x_j w^{jk}     (inverse: w -> conj(w))                 complex -> complex
    fft_r2c:  X_k for k < n//2 + 1 of a real x (the rest is the conjugate mirror)   real -> complex
    fft_c2r:  x_j of the Hermitian signal whose first n//2 + 1 terms are X          complex -> real

There is no C++ version: pocketfft is already compiled code and the cpu device runs this one.
Results keep the input's precision (float32 in, float32 out; numpy >= 2 transforms complex64
natively).
"""
from __future__ import annotations

import numpy as np

__all__ = ["fft_c2c", "fft_c2r", "fft_r2c"]


def _complex(x: np.ndarray) -> np.ndarray:
    """The complex array of a (..., 2) real-layout array."""
    ctype = np.complex64 if x.dtype == np.float32 else np.complex128
    out = np.empty(x.shape[:-1], dtype=ctype)
    out.real, out.imag = x[..., 0], x[..., 1]
    return out


def _real_layout(c: np.ndarray, dtype) -> np.ndarray:
    out = np.empty(c.shape + (2,), dtype=dtype)
    out[..., 0], out[..., 1] = c.real, c.imag
    return out


def fft_c2c(x, n, dim, norm, inverse):
    """Complex DFT (inverse=False) or inverse DFT along `dim` of a (..., 2) array; (..., 2) out."""
    transform = np.fft.ifft if inverse else np.fft.fft
    return _real_layout(transform(_complex(x), n=n, axis=dim, norm=norm), x.dtype)


def fft_r2c(x, n, dim, norm):
    """The n//2 + 1 non-negative frequencies of a real signal along `dim`, as a (..., 2) array."""
    return _real_layout(np.fft.rfft(x, n=n, axis=dim, norm=norm), x.dtype)


def fft_c2r(x, n, dim, norm):
    """The real signal of length n whose rfft is x (..., 2); the imaginary parts of the zero and
    (n even) Nyquist terms are ignored, as numpy and torch ignore them."""
    return np.fft.irfft(_complex(x), n=n, axis=dim, norm=norm).astype(x.dtype, copy=False)
