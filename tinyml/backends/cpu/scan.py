"""cpu adapters: the selective scan (csrc/scan.cpp). The C++ kernel takes input-dependent B and C
as (batch, G, L, N), state index innermost, so the adapter transposes them from the op's
(batch, G, N, L) and transposes dB/dC back; everything else is made C-contiguous. A dtype other
than float32/float64, or a mix, returns NotImplemented: the numpy reference runs."""
import numpy as np

from . import _C, contiguous, native

__all__ = ["selective_scan_forward", "selective_scan_backward"]


def _bc_in(M):
    return np.ascontiguousarray(M.transpose(0, 1, 3, 2)) if M.ndim == 4 else contiguous(M)


def _bc_out(dM, ndim):
    return np.ascontiguousarray(dM.transpose(0, 1, 3, 2)) if ndim == 4 else dM


def selective_scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    if not native(u, delta, A, B, C, D, z, delta_bias):
        return NotImplemented
    return _C.selective_scan_forward(contiguous(u), contiguous(delta), contiguous(A), _bc_in(B), _bc_in(C),
                                     contiguous(D), contiguous(z), contiguous(delta_bias),
                                     bool(delta_softplus))


def selective_scan_backward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, dout, dlast):
    if not native(u, delta, A, B, C, D, z, delta_bias, dout, dlast):
        return NotImplemented
    du, ddelta, dA, dB, dC, dD, dz, dbias = _C.selective_scan_backward(
        contiguous(u), contiguous(delta), contiguous(A), _bc_in(B), _bc_in(C), contiguous(D), contiguous(z),
        contiguous(delta_bias), bool(delta_softplus), contiguous(dout), contiguous(dlast))
    return du, ddelta, dA, _bc_out(dB, B.ndim), _bc_out(dC, C.ndim), dD, dz, dbias
