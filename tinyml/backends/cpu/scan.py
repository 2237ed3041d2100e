"""cpu adapters: the selective scan (csrc/scan.cpp). The C++ kernel takes input-dependent B and C
as (batch, G, L, N), state index innermost, so the adapter transposes them from the op's
(batch, G, N, L) and transposes dB/dC back; everything else is made C-contiguous."""
import numpy as np

from .. import add_kernel
from . import _C, NATIVE_DTYPES, with_fallback


def _native(arrays) -> bool:
    dt = arrays[0].dtype
    return dt in NATIVE_DTYPES and all(a is None or a.dtype == dt for a in arrays)


def _c(a):
    return None if a is None else np.ascontiguousarray(a)


def _bc_in(M):
    return np.ascontiguousarray(M.transpose(0, 1, 3, 2)) if M.ndim == 4 else np.ascontiguousarray(M)


def _bc_out(dM, ndim):
    return np.ascontiguousarray(dM.transpose(0, 1, 3, 2)) if ndim == 4 else dM


def _forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    if not _native((u, delta, A, B, C, D, z, delta_bias)):
        return None
    return _C.selective_scan_forward(_c(u), _c(delta), _c(A), _bc_in(B), _bc_in(C), _c(D), _c(z), _c(delta_bias),
                                     bool(delta_softplus))


def _backward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, dout, dlast):
    if not _native((u, delta, A, B, C, D, z, delta_bias, dout, dlast)):
        return None
    du, ddelta, dA, dB, dC, dD, dz, dbias = _C.selective_scan_backward(
        _c(u), _c(delta), _c(A), _bc_in(B), _bc_in(C), _c(D), _c(z), _c(delta_bias), bool(delta_softplus), _c(dout),
        _c(dlast))
    return du, ddelta, dA, _bc_out(dB, B.ndim), _bc_out(dC, C.ndim), dD, dz, dbias


add_kernel("selective_scan_forward", "cpu", with_fallback("selective_scan_forward", _forward))
add_kernel("selective_scan_backward", "cpu", with_fallback("selective_scan_backward", _backward))
