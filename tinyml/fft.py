"""tinyml.fft: discrete Fourier transforms as in torch.fft (fft, ifft, rfft, irfft with n, dim, norm).

Complex results and inputs use the (..., 2) real layout of torch.view_as_real (tinyml has no
complex dtype); the ops, their gradients and the layout are described in tinyml/ops/fft.py.

    X = tinyml.fft.rfft(x)                 # (..., n//2 + 1, 2): real and imaginary parts
    y = tinyml.fft.irfft(X, n=x.shape[-1])  # back to x
"""
from .ops.fft import fft, ifft, irfft, rfft

__all__ = ["fft", "ifft", "irfft", "rfft"]
