"""cpu adapters: the whole-sequence recurrence of one layer and direction, forward and backward
(csrc/rnn.cpp; math in tinyml/ops/rnn.py). Inputs are made C-contiguous; anything but float32/float64
with one dtype throughout returns NotImplemented, so the numpy reference runs."""

from . import _C, contiguous, native

__all__ = ["rnn_backward", "rnn_forward"]


def rnn_forward(mode, xproj, h0, c0, w_hh, b_hh, batch_sizes, reverse):
    if not native(xproj, h0, c0, w_hh, b_hh):
        return NotImplemented
    return _C.rnn_forward(
        mode,
        contiguous(xproj),
        contiguous(h0),
        contiguous(c0),
        contiguous(w_hh),
        contiguous(b_hh),
        None if batch_sizes is None else list(batch_sizes),
        bool(reverse),
    )


def rnn_backward(mode, dy, dh_n, dc_n, h0, c0, w_hh, b_hh, batch_sizes, reverse, y, saved):
    if not native(dy, dh_n, dc_n, h0, c0, w_hh, b_hh, y, saved):
        return NotImplemented
    return _C.rnn_backward(
        mode,
        contiguous(dy),
        contiguous(dh_n),
        contiguous(dc_n),
        contiguous(h0),
        contiguous(c0),
        contiguous(w_hh),
        contiguous(b_hh),
        None if batch_sizes is None else list(batch_sizes),
        bool(reverse),
        contiguous(y),
        contiguous(saved),
    )
