"""cpu adapters: the selective scan (csrc/scan.cpp). Inputs go to the C++ kernel as they are, made
C-contiguous: B and C in the op's (batch, G, N, L) layout (or (D, N)), which the binding copies to
the step-major layout its loops read, and whose layout dB/dC come back in. A dtype other than
float32/float64, or a mix, returns NotImplemented: the numpy reference runs. With keep_states the
float32 forward also returns the state entering every 32 steps, which its backward takes (and
recomputes when given None)."""
from . import _C, contiguous, native

__all__ = ["selective_scan_forward", "selective_scan_backward"]


def selective_scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, keep_states=False):
    if not native(u, delta, A, B, C, D, z, delta_bias):
        return NotImplemented
    return _C.selective_scan_forward(contiguous(u), contiguous(delta), contiguous(A), contiguous(B),
                                     contiguous(C), contiguous(D), contiguous(z), contiguous(delta_bias),
                                     bool(delta_softplus), bool(keep_states))


def selective_scan_backward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, dout, dlast, states=None):
    if not native(u, delta, A, B, C, D, z, delta_bias, dout, dlast, states):
        return NotImplemented
    return _C.selective_scan_backward(contiguous(u), contiguous(delta), contiguous(A), contiguous(B),
                                      contiguous(C), contiguous(D), contiguous(z), contiguous(delta_bias),
                                      bool(delta_softplus), contiguous(dout), contiguous(dlast),
                                      contiguous(states))
