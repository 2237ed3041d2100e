"""The fused cpu recurrence kernels split by batch rows (csrc/rnn_rows.h: LSTM and RNN layers with at least
24 rows per thread, each thread running its rows' whole recurrence): bit for bit the results of one
thread (the unit split's), with uneven row splits, packed sequences whose active rows end inside a
thread's range, reverse steps, a batch-first x and no biases; against the numpy reference kernels; and
nn.LSTM / nn.RNN at such a batch against torch, forward and backward."""

import numpy as np
import pytest
import torch
from rnn_kernel_helpers import RED, assert_cpu_matches_reference, layer_args, threads_fixture
from rnn_kernel_helpers import cpu_layer as _layer

import tinyml
from tinyml.ops import rnn as R
from tinyml.testing import assert_close

C = pytest.importorskip("tinyml.backends.cpu")._C
if C is None:
    pytest.skip("tinyml._C is not built", allow_module_level=True)

# B 75: 2 threads split it 37 / 38 and 3 threads 25 / 25 / 25 (both >= 24 rows per thread: by rows);
# H 48: 3 GEMM panels, and the kernels use at most 3 threads (one per 16 units)
T, B, IN, H = 4, 75, 20, 48
SIZES = (75, 60, 37, 5)  # the last steps' active rows end inside the first and second threads' ranges

threads = threads_fixture()


def _args(mode, batch_first=False, bias=True, seed=11):
    return layer_args(mode, (T, B, IN, H), batch_first=batch_first, bias=bias, seed=seed, scale=0.2,
                      dy_batch_first=batch_first)


@pytest.mark.parametrize("mode", ["LSTM", "RNN_TANH"])
@pytest.mark.parametrize(
    "sizes, reverse, batch_first, bias",
    [(None, False, True, True), (SIZES, True, False, True), (SIZES, False, False, False)],
)
def test_row_split_matches_one_thread_bit_for_bit(threads, mode, sizes, reverse, batch_first, bias):
    args, dy, dh, dc = _args(mode, batch_first, bias)
    threads(1)
    one = _layer(mode, args, dy, dh, dc, sizes, reverse)
    for n in (2, 3, 4):  # 4: still 3 threads (H 48), 3 on a 2-core machine: a thread descheduled mid-loop
        threads(n)
        for a, b in zip(_layer(mode, args, dy, dh, dc, sizes, reverse), one):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", ["LSTM", "RNN_RELU"])
@pytest.mark.parametrize("reverse", [False, True])
def test_row_split_agrees_with_the_reference(threads, mode, reverse):
    args, dy, dh, dc = _args(mode, seed=3)
    threads(2)
    assert_cpu_matches_reference(mode, args, dy, dh, dc, SIZES, reverse)


@pytest.mark.parametrize("cls", ["LSTM", "RNN"])
def test_layers_split_by_rows_match_torch(threads, cls):
    threads(2)
    torch.manual_seed(0)
    theirs = getattr(torch.nn, cls)(IN, H, batch_first=True)
    ours = getattr(tinyml.nn, cls)(IN, H, batch_first=True)
    ours.load_state_dict({k: tinyml.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, IN)).astype(np.float32)
    w = rng.standard_normal((B, T, H)).astype(np.float32)
    xt, xp = tinyml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yt, yp = ours(xt)[0], theirs(xp)[0]
    assert_close(yt, yp.detach(), **RED)
    (yt * tinyml.tensor(w)).sum().backward()
    (yp * torch.tensor(w)).sum().backward()
    assert_close(xt.grad, xp.grad, **RED)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, tparams[name].grad, **RED)


@pytest.mark.parametrize("mode", ["LSTM", "RNN_TANH"])
@pytest.mark.parametrize("T_, n_in", [(0, 4), (3, 0), (1, 7)])
def test_row_split_edge_sizes_agree_with_the_reference(threads, mode, T_, n_in):
    """No steps, no inputs (W_ih has no columns), one step: by rows at B 50 on 2 threads."""
    from tinyml.backends import implementations

    fwd, bwd = implementations("rnn_layer_forward"), implementations("rnn_layer_backward")
    rng = np.random.default_rng(5)
    Bn, Hn = 50, 32
    GH = R.GATES[mode] * Hn
    shapes = [(T_, Bn, n_in), (GH, n_in), (GH,), (Bn, Hn), (Bn, Hn), (GH, Hn), (GH,)]
    x, w_ih, b_ih, h0, c0, w_hh, b_hh = ((rng.standard_normal(s) * 0.3).astype(np.float32) for s in shapes)
    args = (x, w_ih, b_ih, h0, c0 if mode == "LSTM" else None, w_hh, b_hh)
    dy = rng.standard_normal((T_, Bn, Hn)).astype(np.float32)
    dh = rng.standard_normal((Bn, Hn)).astype(np.float32)
    dc = dh.copy() if mode == "LSTM" else None
    threads(2)
    outs = {k: fwd[k](mode, *args, None, False) for k in ("reference", "cpu")}
    y, _, _, saved = outs["reference"]
    grads = {k: bwd[k](mode, dy, dh, dc, *args, None, False, y, saved) for k in ("reference", "cpu")}
    for a, b in zip([*outs["cpu"], *grads["cpu"]], [*outs["reference"], *grads["reference"]]):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.shape == b.shape
            assert_close(a, b, **RED)
