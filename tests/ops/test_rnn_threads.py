"""The cpu recurrence kernels' thread teams (csrc/rnn_memory.h Phases: each step's hidden units in chunks
that threads own, and take from each other when their own are done): results do not depend on the thread
count, bit for bit, with more threads than cores (threads descheduled mid-step, chunks taken by the
others), uneven chunk splits, packed sequences, reverse steps and a batch-first x; and they agree with the
numpy reference kernels."""

import numpy as np
import pytest
from rnn_kernel_helpers import RED, assert_cpu_matches_reference, layer_args, threads_fixture
from rnn_kernel_helpers import cpu_layer as _layer

from tinyml.ops import rnn as R
from tinyml.testing import assert_close

C = pytest.importorskip("tinyml.backends.cpu")._C
if C is None:
    pytest.skip("tinyml._C is not built", allow_module_level=True)

# B H^2 G past the kernels' parallel threshold for every mode; H = 100: 7 GEMM panels, split unevenly
T, B, IN, H = 5, 9, 20, 100
SIZES = (9, 9, 7, 4, 4)

threads = threads_fixture()


def _args(mode, batch_first=False, dtype=np.float32):
    return layer_args(mode, (T, B, IN, H), batch_first=batch_first, dtype=dtype)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
@pytest.mark.parametrize("sizes, reverse, batch_first", [(None, False, True), (SIZES, True, False)])
def test_results_do_not_depend_on_the_thread_count(threads, mode, sizes, reverse, batch_first):
    args, dy, dh, dc = _args(mode, batch_first)
    threads(1)
    one = _layer(mode, args, dy, dh, dc, sizes, reverse)
    for n in (2, 3, 5):  # 3 and 5 on a 2-core machine: threads are descheduled mid-step
        threads(n)
        for _ in range(2):
            for a, b in zip(_layer(mode, args, dy, dh, dc, sizes, reverse), one):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_RELU"])
def test_threaded_kernels_agree_with_the_reference(threads, mode):

    args, dy, dh, dc = _args(mode)
    threads(3)
    assert_cpu_matches_reference(mode, args, dy, dh, dc, SIZES, False)


def test_given_projection_kernels_threaded(threads):
    """rnn_forward / rnn_backward (xproj given) on a team of threads against one thread, bit for bit."""
    rng = np.random.default_rng(2)
    xproj = rng.standard_normal((T, B, 3 * H)).astype(np.float32)
    h0, w, b = rng.standard_normal((B, H)), rng.standard_normal((3 * H, H)) * 0.2, rng.standard_normal(3 * H)
    h0, w, b = (a.astype(np.float32) for a in (h0, w, b))
    dy, dh = rng.standard_normal((T, B, H)).astype(np.float32), rng.standard_normal((B, H)).astype(np.float32)

    def run():
        y, h_n, _, saved = C.rnn_forward("GRU", xproj, h0, None, w, b, SIZES, False)
        grads = C.rnn_backward("GRU", dy, dh, None, h0, None, w, b, SIZES, False, y, saved)
        return [y, h_n, *(g for g in grads if g is not None)]

    threads(1)
    one = run()
    threads(4)
    for a, b_ in zip(run(), one):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("T, B, n_in, H", [(0, 3, 4, 5), (3, 130, 8, 40), (2, 3, 0, 20)])
def test_edge_sizes_agree_with_the_reference(threads, mode, T, B, n_in, H):
    """No steps; more rows than a GEMM block (130 > 96: the per-step GEMMs read them in place); no inputs."""
    from tinyml.backends import implementations

    fwd, bwd = implementations("rnn_layer_forward"), implementations("rnn_layer_backward")
    rng = np.random.default_rng(5)
    GH = R.GATES[mode] * H
    shapes = [(T, B, n_in), (GH, n_in), (GH,), (B, H), (B, H), (GH, H), (GH,)]
    x, w_ih, b_ih, h0, c0, w_hh, b_hh = ((rng.standard_normal(s) * 0.3).astype(np.float32) for s in shapes)
    args = (x, w_ih, b_ih, h0, c0 if mode == "LSTM" else None, w_hh, b_hh)
    dy, dh = rng.standard_normal((T, B, H)).astype(np.float32), rng.standard_normal((B, H)).astype(np.float32)
    dc = dh.copy() if mode == "LSTM" else None
    threads(2)
    outs = {k: fwd[k](mode, *args, None, False) for k in ("reference", "cpu")}
    y, _, _, saved = outs["reference"]
    grads = {k: bwd[k](mode, dy, dh, dc, *args, None, False, y, saved) for k in ("reference", "cpu")}
    for k in ("reference", "cpu"):
        outs[k] = [*outs[k], *grads[k]]
    for a, b in zip(outs["cpu"], outs["reference"]):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.shape == b.shape
            assert_close(a, b, **RED)
