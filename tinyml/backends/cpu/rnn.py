"""cpu adapters: the whole-sequence recurrence of one layer and direction, forward and backward
(csrc/rnn.cpp; math in tinyml/ops/rnn.py), given xproj (rnn_forward) or x, W_ih, b_ih (rnn_layer_*:
the input projection's GEMMs then run inside the kernel, on its threads). Inputs are made C-contiguous,
except x and dy where they are the (T, B, n) transposed view of a C-contiguous (B, T, n) array (a
batch-first layer's): the kernels read those in place (and dx comes back in x's layout). Anything but
float32/float64 with one dtype throughout returns NotImplemented, so the numpy reference runs."""

from . import _C, contiguous, native

__all__ = ["rnn_backward", "rnn_forward", "rnn_layer_backward", "rnn_layer_forward"]


def _rows(a):
    """a (T, B, n) as the kernels read it: as given when C-contiguous or the transposed view of a
    C-contiguous (B, T, n) array (csrc/rnn.cpp check_rows), else a C-contiguous copy."""
    if a.flags.c_contiguous:
        return a
    if a.ndim == 3:
        T, _, n = a.shape
        isz = a.itemsize
        if a.strides == (n * isz, T * n * isz, isz):
            return a
    return contiguous(a)


def _call(kernel, mode, tensors, batch_sizes, reverse, trailing=(), rows=()):
    """kernel(mode, *tensors, batch_sizes, reverse, *trailing) with every array C-contiguous (those at
    the indices `rows` of tensors as _rows leaves them) and batch_sizes a list (or None);
    NotImplemented where the C++ kernels decline the dtypes."""
    if not native(*tensors, *trailing):
        return NotImplemented
    return kernel(
        mode,
        *[_rows(t) if i in rows else contiguous(t) for i, t in enumerate(tensors)],
        None if batch_sizes is None else list(batch_sizes),
        bool(reverse),
        *[contiguous(t) for t in trailing],
    )


def rnn_forward(mode, xproj, h0, c0, w_hh, b_hh, batch_sizes, reverse):
    return _call(_C.rnn_forward, mode, (xproj, h0, c0, w_hh, b_hh), batch_sizes, reverse)


def rnn_backward(mode, dy, dh_n, dc_n, h0, c0, w_hh, b_hh, batch_sizes, reverse, y, saved):
    tensors = (dy, dh_n, dc_n, h0, c0, w_hh, b_hh)
    return _call(_C.rnn_backward, mode, tensors, batch_sizes, reverse, (y, saved), rows=(0,))


def rnn_layer_forward(mode, x, w_ih, b_ih, h0, c0, w_hh, b_hh, batch_sizes, reverse):
    tensors = (x, w_ih, b_ih, h0, c0, w_hh, b_hh)
    return _call(_C.rnn_layer_forward, mode, tensors, batch_sizes, reverse, rows=(0,))


def rnn_layer_backward(mode, dy, dh_n, dc_n, x, w_ih, b_ih, h0, c0, w_hh, b_hh, batch_sizes, reverse, y,
                       saved):
    tensors = (dy, dh_n, dc_n, x, w_ih, b_ih, h0, c0, w_hh, b_hh)
    return _call(_C.rnn_layer_backward, mode, tensors, batch_sizes, reverse, (y, saved), rows=(0, 3))
