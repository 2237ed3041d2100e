"""tinyml.fft: discrete Fourier transforms as in torch.fft (fft, ifft, rfft, irfft with n, dim, norm).

Spectra are complex64 / complex128 tensors, as torch's; the ops and their gradients are described
in tinyml/ops/fft.py. torch.view_as_real / view_as_complex give the (..., 2) real layout.

    X = tinyml.fft.rfft(x)                 # (..., n//2 + 1) complex: x float32 -> complex64
    y = tinyml.fft.irfft(X, n=x.shape[-1])  # back to x
    f = tinyml.fft.rfftfreq(n, d=1.0)       # the frequencies of rfft's bins: k / (d n), k = 0..n//2
"""
from . import dtypes as _dt
from .ops.creation import arange
from .ops.fft import fft, ifft, irfft, rfft

__all__ = ["fft", "fftfreq", "ifft", "irfft", "rfft", "rfftfreq"]


def _check_n(name: str, n) -> None:
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"{name}: n must be a positive int, got {n!r}")


def fftfreq(n: int, d: float = 1.0, *, dtype=None, device=None, requires_grad: bool = False):
    """The sample frequencies of fft's n bins: [0, 1, ..., (n-1)//2, -(n//2), ..., -1] / (d n)."""
    _check_n("fftfreq", n)
    k = arange(n, dtype=_dt.float64)
    k = (k + n // 2) % n - n // 2  # 0..ceil(n/2)-1, then the negative half
    out = (k / (d * n)).to(dtype or _dt.get_default_dtype()).to(device or "cpu")
    return out.requires_grad_(requires_grad)


def rfftfreq(n: int, d: float = 1.0, *, dtype=None, device=None, requires_grad: bool = False):
    """The sample frequencies of rfft's n//2 + 1 bins: [0, 1, ..., n//2] / (d n)."""
    _check_n("rfftfreq", n)
    out = (arange(n // 2 + 1, dtype=_dt.float64) / (d * n)).to(dtype or _dt.get_default_dtype())
    return out.to(device or "cpu").requires_grad_(requires_grad)
