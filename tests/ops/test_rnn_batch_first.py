"""The cpu rnn_layer kernels read a batch-first layer's input and output gradient in place: x and dy
given as the (T, B, n) transposed view of a C-contiguous (B, T, n) array give exactly the results of
their contiguous copies, dx comes back in x's layout (LSTM, RNN; GRU's is C-contiguous), any other
strided array is copied by the adapter, and the binding rejects one it cannot read, naming it."""

import numpy as np
import pytest
from test_rnn import MODES

import tinyml
from tinyml.ops import rnn as R

T, B, IN, H = 5, 6, 33, 70  # H 70: uneven unit slices over two threads, a partial GEMM panel


def _cpu():
    from tinyml.backends import implementations

    impl = implementations("rnn_layer_forward")
    if "cpu" not in impl:
        pytest.skip("tinyml._C is not built")
    return impl["cpu"], implementations("rnn_layer_backward")["cpu"]


def _args(rng, mode, dtype=np.float32):
    GH = R.GATES[mode] * H
    shapes = [(GH, IN), (GH,), (B, H), (B, H), (GH, H), (GH,)]
    w_ih, b_ih, h0, c0, w_hh, b_hh = ((rng.standard_normal(s) * 0.3).astype(dtype) for s in shapes)
    return w_ih, b_ih, h0, c0 if mode == "LSTM" else None, w_hh, b_hh


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sizes, reverse", [(None, False), ((6, 5, 5, 2, 0), True)])
def test_batch_first_views_match_contiguous_copies(mode, sizes, reverse):
    fwd, bwd = _cpu()
    rng = np.random.default_rng(0)
    x_bt = rng.standard_normal((B, T, IN)).astype(np.float32)
    dy_bt = rng.standard_normal((B, T, H)).astype(np.float32)
    x, dy = x_bt.transpose(1, 0, 2), dy_bt.transpose(1, 0, 2)  # (T, B, n) views, not C-contiguous
    assert not x.flags.c_contiguous and not dy.flags.c_contiguous
    args = _args(rng, mode)
    dh = rng.standard_normal((B, H)).astype(np.float32)
    dc = dh.copy() if mode == "LSTM" else None
    view = fwd(mode, x, *args, sizes, reverse)
    copy = fwd(mode, np.ascontiguousarray(x), *args, sizes, reverse)
    for a, b in zip(view, copy):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    y, _, _, saved = copy
    g_view = bwd(mode, dy, dh, dc, x, *args, sizes, reverse, y, saved)
    dy_c, x_c = np.ascontiguousarray(dy), np.ascontiguousarray(x)
    g_copy = bwd(mode, dy_c, dh, dc, x_c, *args, sizes, reverse, y, saved)
    for a, b in zip(g_view, g_copy):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    dx = g_view[0]
    if mode == "GRU":
        assert dx.flags.c_contiguous
    else:  # x's layout: the transpose back to (B, T, I) is C-contiguous, so the leaf keeps it as is
        assert dx.strides == x.strides and dx.transpose(1, 0, 2).flags.c_contiguous


def test_other_strided_inputs_are_copied_and_the_binding_names_them():
    fwd, _ = _cpu()
    rng = np.random.default_rng(1)
    args = _args(rng, "LSTM")
    wide = rng.standard_normal((T, B, 2 * IN)).astype(np.float32)
    x = wide[:, :, ::2]  # every other feature: no layout the kernel reads in place
    np.testing.assert_array_equal(fwd("LSTM", x, *args, None, False)[0],
                                  fwd("LSTM", np.ascontiguousarray(x), *args, None, False)[0])
    from tinyml.backends.cpu import _C

    with pytest.raises(ValueError, match=r"rnn: x of shape \(5, 6, 33\) must be C-contiguous"):
        _C.rnn_layer_forward("LSTM", x, *args, None, False)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_batch_first_layer_gives_a_contiguous_input_gradient(cls):
    """nn's batch_first layer feeds the kernel the transposed input; x.grad matches the time-major layer's
    on the same weights and comes back (B, T, I) C-contiguous (LSTM / RNN: no copy on the way)."""
    _cpu()
    rng = np.random.default_rng(2)
    bf = getattr(tinyml.nn, cls)(IN, H, batch_first=True)
    tm = getattr(tinyml.nn, cls)(IN, H)
    tm.load_state_dict(bf.state_dict())
    x = rng.standard_normal((B, T, IN)).astype(np.float32)
    g = rng.standard_normal((B, T, H)).astype(np.float32)
    xb = tinyml.tensor(x, requires_grad=True)
    xt = tinyml.tensor(np.ascontiguousarray(x.transpose(1, 0, 2)), requires_grad=True)
    bf(xb)[0].backward(tinyml.tensor(g))
    tm(xt)[0].backward(tinyml.tensor(np.ascontiguousarray(g.transpose(1, 0, 2))))
    np.testing.assert_array_equal(xb.grad.numpy(), xt.grad.numpy().transpose(1, 0, 2))
    for (name, p), q in zip(bf.named_parameters(), tm.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy(), err_msg=name)
    assert xb.grad.is_contiguous()
