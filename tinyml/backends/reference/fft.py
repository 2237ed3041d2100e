"""Reference kernels for the discrete Fourier transforms, numpy's pocketfft (numpy.fft).

Complex data are complex64 / complex128 arrays. `dim` is the transform's dim, `n` the signal
length after zero-padding or cropping, `norm` numpy's and torch's "backward" | "ortho" | "forward".
With w = exp(-2 pi i / n):

    fft_c2c:  X_k = s sum_j x_j w^{jk}     (inverse: w -> conj(w))                 complex -> complex
    fft_r2c:  X_k for k < n//2 + 1 of a real x (the rest is the conjugate mirror)   real -> complex
    fft_c2r:  x_j of the Hermitian signal whose first n//2 + 1 terms are X          complex -> real

There is no C++ version: pocketfft is already compiled code and the cpu device runs this one.
Results keep the input's precision (float32 / complex64 in, complex64 / float32 out; numpy >= 2
transforms single precision natively).
"""
from __future__ import annotations

import numpy as np

__all__ = ["fft_c2c", "fft_c2r", "fft_r2c"]

_COMPLEX_OF = {np.dtype(np.float32): np.complex64, np.dtype(np.float64): np.complex128}


def fft_c2c(x, n, dim, norm, inverse):
    """Complex DFT (inverse=False) or inverse DFT along `dim` of a complex array."""
    transform = np.fft.ifft if inverse else np.fft.fft
    return transform(x, n=n, axis=dim, norm=norm).astype(x.dtype, copy=False)


def fft_r2c(x, n, dim, norm):
    """The n//2 + 1 non-negative frequencies of a real signal along `dim` (complex, x's precision)."""
    return np.fft.rfft(x, n=n, axis=dim, norm=norm).astype(_COMPLEX_OF[x.dtype], copy=False)


def fft_c2r(x, n, dim, norm):
    """The real signal of length n whose rfft is x; the imaginary parts of the zero and (n even)
    Nyquist terms are ignored, as numpy and torch ignore them."""
    return np.fft.irfft(x, n=n, axis=dim, norm=norm).astype(x.real.dtype, copy=False)
