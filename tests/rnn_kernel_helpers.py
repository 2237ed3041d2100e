"""Shared by the tests of the cpu recurrence kernels' threading (tests/ops/test_rnn_threads.py: the unit
split's thread teams; tests/ops/test_rnn_rows.py: the row split): the thread-count fixture, random
layer arguments, one forward + backward of the cpu kernels, and the check against the numpy reference."""
import numpy as np
import pytest

import tinyml
from tinyml.ops import rnn as R
from tinyml.testing import assert_close

RED = {"kind": "reduction"}


def threads_fixture():
    """The `threads` fixture of a test module (`threads = threads_fixture()`, as family_devices.py's
    backend_device): sets the kernels' thread count for a test and restores it afterwards."""
    @pytest.fixture
    def threads():
        before = tinyml.get_num_threads()
        yield tinyml.set_num_threads
        tinyml.set_num_threads(before)

    return threads


def layer_args(mode, dims, *, batch_first=False, bias=True, seed=7, scale=0.15, dtype=np.float32,
               dy_batch_first=False):
    """(x, w_ih, b_ih, h0, c0, w_hh, b_hh), dy, dh, dc of rnn_layer_forward/backward for dims (T, B, IN, H);
    batch_first: x is the (T, B, I) view of a (B, T, I) array (read in place), and dy too with
    dy_batch_first. c0 and dc are None but for LSTM, the biases None without bias."""
    T, B, IN, H = dims
    rng = np.random.default_rng(seed)
    GH = R.GATES[mode] * H
    x = rng.standard_normal((B, T, IN) if batch_first else (T, B, IN)).astype(dtype)
    if batch_first:
        x = x.transpose(1, 0, 2)
    shapes = [(GH, IN), (GH,), (B, H), (B, H), (GH, H), (GH,)]
    w_ih, b_ih, h0, c0, w_hh, b_hh = ((rng.standard_normal(s) * scale).astype(dtype) for s in shapes)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    if dy_batch_first:
        dy = np.ascontiguousarray(dy.transpose(1, 0, 2)).transpose(1, 0, 2)
    dh, dc = rng.standard_normal((B, H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype)
    lstm = mode == "LSTM"
    args = (x, w_ih, b_ih if bias else None, h0, c0 if lstm else None, w_hh, b_hh if bias else None)
    return args, dy, dh, dc if lstm else None


def cpu_layer(mode, args, dy, dh, dc, sizes, reverse):
    """rnn_layer_forward then rnn_layer_backward of the cpu kernels: every output, as numpy arrays."""
    from tinyml.backends.cpu import _C

    y, h_n, c_n, saved = _C.rnn_layer_forward(mode, *args, sizes, reverse)
    grads = _C.rnn_layer_backward(mode, dy, dh, dc, *args, sizes, reverse, y, saved)
    return [a for a in (y, h_n, c_n, saved, *grads) if a is not None]


def assert_cpu_matches_reference(mode, args, dy, dh, dc, sizes, reverse):
    """The cpu and reference rnn_layer_forward / rnn_layer_backward agree (to reduction tolerance)."""
    from tinyml.backends import implementations

    fwd, bwd = implementations("rnn_layer_forward"), implementations("rnn_layer_backward")
    outs = {k: fwd[k](mode, *args, sizes, reverse) for k in ("reference", "cpu")}
    for a, b in zip(outs["cpu"], outs["reference"]):
        if a is not None:
            assert_close(a, b, **RED)
    y, _, _, saved = outs["reference"]
    grads = {k: bwd[k](mode, dy, dh, dc, *args, sizes, reverse, y, saved) for k in ("reference", "cpu")}
    for a, b in zip(grads["cpu"], grads["reference"]):
        assert (a is None) == (b is None)
        if a is not None:
            assert_close(a, b, **RED)
