"""cpu adapters: the causal depthwise conv1d, its backward and the generation step
(csrc/causal_conv1d.cpp). Inputs are made C-contiguous; a dtype other than float32/float64, or a
mix, returns NotImplemented (the numpy reference runs). The update writes conv_state in place, so
a state the binding cannot write directly (a non-contiguous view, another dtype) declines too."""
from . import _C, contiguous, native

__all__ = ["causal_conv1d_forward", "causal_conv1d_backward", "causal_conv1d_update"]


def causal_conv1d_forward(x, weight, bias, silu):
    if not native(x, weight, bias):
        return NotImplemented
    return _C.causal_conv1d_forward(contiguous(x), contiguous(weight), contiguous(bias), bool(silu))


def causal_conv1d_backward(x, weight, bias, dy, silu):
    if not native(x, weight, bias, dy):
        return NotImplemented
    dx, dweight, dbias = _C.causal_conv1d_backward(contiguous(x), contiguous(weight), contiguous(bias),
                                                   contiguous(dy), bool(silu))
    return dx, dweight, dbias


def causal_conv1d_update(x, conv_state, weight, bias, silu):
    if not native(x, conv_state, weight, bias) or not conv_state.flags.c_contiguous:
        return NotImplemented
    return _C.causal_conv1d_update(contiguous(x), conv_state, contiguous(weight), contiguous(bias),
                                   bool(silu))
