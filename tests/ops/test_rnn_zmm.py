"""The recurrent kernels' two GEMM micro-kernels (csrc/rnn_gemm.h: 8-wide ymm tiles of 6 rows x 1 panel;
csrc/rnn_zmm.h: AVX-512 zmm tiles of 8 rows x 2 panels, where the CPU has x86-64-v4). Both sum every
element the same way (from 0, one fused multiply-add per k in ascending order, added to C once per k
block), so `_C.rnn_zmm(False)` must give the same bits as the zmm kernel, forward and backward, for every
mode, dtype and layout: odd panel counts (a lone panel in a tile of its own), partial last panels, row
counts that leave short tiles, the row split (B >= 48 on 2 threads) and the unit split, packed sequences,
NaN/inf. On a CPU without AVX-512 both runs take the ymm kernel (the tests then check only that the
switch is harmless); the reference comparison runs either way."""

import numpy as np
import pytest
from rnn_kernel_helpers import assert_cpu_matches_reference, layer_args, threads_fixture
from rnn_kernel_helpers import cpu_layer as _layer

C = pytest.importorskip("tinyml.backends.cpu")._C
if C is None:
    pytest.skip("tinyml._C is not built", allow_module_level=True)

threads = threads_fixture()


@pytest.fixture
def zmm():
    """zmm(on) switches the kernel; the CPU's default comes back after the test."""
    before = C.rnn_zmm()
    yield C.rnn_zmm
    C.rnn_zmm(before)


def _both(zmm, fn):
    zmm(True)
    wide = fn()
    zmm(False)
    narrow = fn()
    assert len(wide) == len(narrow)
    for a, b in zip(wide, narrow):
        np.testing.assert_array_equal(a, b)
    return wide


# (T, B, IN, H): H 100 = 7 panels (odd: a lone panel; partial last panel of 4), IN 20 = 2 panels (partial);
# B 9: tiles of 8 + 1 rows (unit split); B 50 on 2 threads: row split, 25 rows a thread (8 8 5 4);
# H 256 with B 64: the benchmark's layer (row split, 2 panels per tile everywhere)
DIMS = [(5, 9, 20, 100), (4, 50, 17, 33), (3, 64, 64, 256), (2, 1, 3, 7)]


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_zmm_and_ymm_kernels_give_the_same_bits(zmm, threads, mode, dims, n_threads):
    threads(n_threads)
    args, dy, dh, dc = layer_args(mode, dims, batch_first=True, dy_batch_first=True)
    _both(zmm, lambda: _layer(mode, args, dy, dh, dc, None, False))


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_RELU"])
def test_zmm_same_bits_packed_reverse_float64(zmm, threads, mode):
    threads(2)
    dims, sizes = (5, 50, 12, 40), (50, 49, 30, 7, 1)
    args, dy, dh, dc = layer_args(mode, dims, dtype=np.float64)
    _both(zmm, lambda: _layer(mode, args, dy, dh, dc, sizes, True))


def test_zmm_same_bits_given_projection(zmm, threads):
    """rnn_forward / rnn_backward (xproj given), whose dW GEMM packs A in tiles of the kernel's rows."""
    threads(2)
    rng = np.random.default_rng(4)
    T, B, H = 4, 13, 45
    xproj = rng.standard_normal((T, B, 4 * H)).astype(np.float32)
    h0, c0 = rng.standard_normal((B, H)).astype(np.float32), rng.standard_normal((B, H)).astype(np.float32)
    w = (rng.standard_normal((4 * H, H)) * 0.2).astype(np.float32)
    b = rng.standard_normal(4 * H).astype(np.float32)
    dy, dh, dc = (rng.standard_normal(s).astype(np.float32) for s in ((T, B, H), (B, H), (B, H)))

    def run():
        y, h_n, c_n, saved = C.rnn_forward("LSTM", xproj, h0, c0, w, b, None, False)
        grads = C.rnn_backward("LSTM", dy, dh, dc, h0, c0, w, b, None, False, y, saved)
        return [y, h_n, c_n, *(g for g in grads if g is not None)]

    _both(zmm, run)


def test_zmm_nan_inf_propagate_alike(zmm, threads):
    """inf in W_hh and NaN in x reach the same outputs, as the same NaN/inf, through both kernels."""
    threads(2)
    args, dy, dh, dc = layer_args("LSTM", (3, 50, 10, 36))
    args = [None if a is None else a.copy() for a in args]
    args[0][1, 3, 2] = np.nan
    args[5][7, 5] = np.inf
    out = _both(zmm, lambda: _layer("LSTM", args, dy, dh, dc, None, False))
    assert np.isnan(out[0]).any()


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("on", [True, False])
def test_both_kernels_agree_with_the_reference(zmm, threads, mode, on):
    zmm(on)
    threads(2)
    args, dy, dh, dc = layer_args(mode, (4, 50, 17, 70))
    assert_cpu_matches_reference(mode, args, dy, dh, dc, (50, 40, 40, 3), False)


def test_rnn_zmm_switch_reports_the_cpu():
    before = C.rnn_zmm()
    try:
        assert C.rnn_zmm(False) is False
        on = C.rnn_zmm(True)  # True only where the CPU has AVX-512 (x86-64-v4)
        assert C.rnn_zmm() is on
    finally:
        C.rnn_zmm(before)
