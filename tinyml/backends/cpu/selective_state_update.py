"""cpu adapter: one selective-scan step (csrc/selective_state_update.cpp). The kernel writes the
state in place, so a state the binding cannot write directly (a non-contiguous view) declines, as
does a dtype other than float32/float64 or a mix: the numpy reference runs."""
from . import _C, contiguous, native

__all__ = ["selective_state_update"]


def selective_state_update(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus):
    if not native(x, state, dt, A, B, C, D, z, dt_bias) or not state.flags.c_contiguous:
        return NotImplemented
    return _C.selective_state_update(state, contiguous(x), contiguous(dt), contiguous(A), contiguous(B),
                                     contiguous(C), contiguous(D), contiguous(z), contiguous(dt_bias),
                                     bool(dt_softplus))
