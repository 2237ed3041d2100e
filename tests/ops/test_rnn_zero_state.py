"""The cpu recurrence kernels with a zero initial state (nn.LSTM's default): the first step's h0 W_hh^T and
the dgates^T h0 term of dW_hh are left out (csrc/rnn_common.h dw_hh_rows), unless W_hh (forward) or the
first step's dgates (backward) hold inf or NaN, which must reach the outputs as through torch's GEMMs
(0 * inf = NaN). Results stay bit for bit the same for any thread count, in the unit split (B 9) and the
row split (B 75, 2 threads), forward and reverse, and agree with the numpy reference and with torch."""

import numpy as np
import pytest
import torch
from rnn_kernel_helpers import RED, assert_cpu_matches_reference, layer_args, threads_fixture
from rnn_kernel_helpers import cpu_layer as _layer

import tinyml
from tinyml.testing import assert_close

C = pytest.importorskip("tinyml.backends.cpu")._C
if C is None:
    pytest.skip("tinyml._C is not built", allow_module_level=True)

threads = threads_fixture()
UNITS, ROWS = (5, 9, 20, 100), (4, 75, 20, 48)  # (T, B, I, H): split by hidden units / by batch rows


def _zero_state_args(mode, dims, seed=7):
    """layer_args with h0 (and c0) zero: (x, w_ih, b_ih, h0, c0, w_hh, b_hh), dy, dh, dc."""
    args, dy, dh, dc = layer_args(mode, dims, seed=seed, scale=0.2)
    x, w_ih, b_ih, h0, c0, w_hh, b_hh = args
    h0 = np.zeros_like(h0)
    c0 = None if c0 is None else np.zeros_like(c0)
    return (x, w_ih, b_ih, h0, c0, w_hh, b_hh), dy, dh, dc


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
@pytest.mark.parametrize("dims", [UNITS, ROWS], ids=["units", "rows"])
@pytest.mark.parametrize("reverse", [False, True])
def test_zero_state_results_do_not_depend_on_the_thread_count(threads, mode, dims, reverse):
    args, dy, dh, dc = _zero_state_args(mode, dims)
    sizes = (dims[1],) * (dims[0] - 2) + (dims[1] - 3, 2)  # packed: rows end early
    threads(1)
    one = _layer(mode, args, dy, dh, dc, sizes, reverse)
    for n in (2, 3):
        threads(n)
        for a, b in zip(_layer(mode, args, dy, dh, dc, sizes, reverse), one):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_RELU"])
@pytest.mark.parametrize("dims", [UNITS, ROWS], ids=["units", "rows"])
@pytest.mark.parametrize("reverse", [False, True])
def test_zero_state_agrees_with_the_reference(threads, mode, dims, reverse):
    args, dy, dh, dc = _zero_state_args(mode, dims, seed=3)
    threads(2)
    assert_cpu_matches_reference(mode, args, dy, dh, dc, None, reverse)
    if dims[0] == 1 or mode == "GRU":
        return
    one_step = tuple(a[:1] if i == 0 else a for i, a in enumerate(args))  # T = 1: dW_hh has no term at all
    assert_cpu_matches_reference(mode, one_step, dy[:1], dh, dc, None, reverse)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # (the reference's matmuls meet the NaN)
@pytest.mark.parametrize("mode", ["LSTM", "RNN_TANH"])
@pytest.mark.parametrize("dims", [UNITS, ROWS], ids=["units", "rows"])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_non_finite_w_hh_reaches_the_outputs_with_a_zero_state(threads, mode, dims, bad):
    """h0 = 0 but W_hh[q, k] inf or NaN: the first step's gate q is NaN (0 * inf), as in the reference."""
    args, dy, dh, dc = _zero_state_args(mode, dims)
    w_hh = args[5].copy()
    w_hh[dims[3] // 2 + 1, 3] = bad  # (LSTM: a unit of the input gate; RNN: unit H / 2 + 1)
    args = (*args[:5], w_hh, args[6])
    threads(2)
    y = _layer(mode, args, dy, dh, dc, None, False)[0]
    assert np.isnan(y[0]).any()
    assert_cpu_matches_reference(mode, args, dy, dh, dc, None, False)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("dims", [UNITS, ROWS], ids=["units", "rows"])
@pytest.mark.parametrize("reverse", [False, True])
def test_non_finite_first_step_gradient_reaches_dw_hh(threads, mode, dims, reverse):
    """dy of the step that starts from h0 = 0 holds inf: its dgates are inf/NaN, and dW_hh = sum dgates^T
    h_prev gets NaN from inf * 0 in the reference (and torch); the kernels must not leave that term out."""
    args, dy, dh, dc = _zero_state_args(mode, dims)
    dy = dy.copy()
    dy[-1 if reverse else 0, 1, 2] = np.inf
    threads(2)
    grads = _layer(mode, args, dy, dh, dc, None, reverse)
    dw_hh = grads[-2] if args[6] is not None else grads[-1]
    assert np.isnan(dw_hh).any()
    assert_cpu_matches_reference(mode, args, dy, dh, dc, None, reverse)


@pytest.mark.parametrize("where", ["w_hh", "dy"])
def test_lstm_layer_with_non_finite_values_and_default_state_matches_torch(threads, where):
    """nn.LSTM (hx None: zeros) at B 64 on 2 threads (split by rows) against torch: NaN where torch has
    NaN."""
    threads(2)
    torch.manual_seed(0)
    Tn, Bn, In, Hn = 3, 64, 8, 32
    theirs = torch.nn.LSTM(In, Hn, batch_first=True)
    with torch.no_grad():
        if where == "w_hh":
            theirs.weight_hh_l0[5, 7] = float("inf")
    ours = tinyml.nn.LSTM(In, Hn, batch_first=True)
    ours.load_state_dict({k: tinyml.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((Bn, Tn, In)).astype(np.float32)
    g = rng.standard_normal((Bn, Tn, Hn)).astype(np.float32)
    if where == "dy":
        g[4, 0, 9] = np.inf
    xt, xp = tinyml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yt, yp = ours(xt)[0], theirs(xp)[0]
    assert_close(yt, yp.detach(), **RED)
    yt.backward(tinyml.tensor(g))
    yp.backward(torch.tensor(g))
    assert_close(xt.grad, xp.grad, **RED)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, tparams[name].grad, **RED)
    if where == "dy":
        assert np.isnan(ours.weight_hh_l0.grad.numpy()).any()
