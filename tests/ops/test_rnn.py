"""The rnn kernel family (ops/rnn.py: one recurrent layer and direction over a whole sequence, and the
lstm/gru/rnn cells) against PyTorch's own cells (torch.lstm_cell, gru_cell, rnn_tanh_cell,
rnn_relu_cell, stepped in a loop: given W_ih = I they take xproj as their input projection), forward
and backward, on every backend of the family; gradcheck in float64; errors and NaN propagation."""

import numpy as np
import pytest
import torch
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
from tinyml.ops import rnn as R
from tinyml.testing import assert_close, gradcheck

backend_device = backend_device_fixture()
RED = {"kind": "reduction"}
MODES = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]
TORCH_CELL = {
    "LSTM": torch.lstm_cell,
    "GRU": torch.gru_cell,
    "RNN_TANH": torch.rnn_tanh_cell,
    "RNN_RELU": torch.rnn_relu_cell,
}


def torch_layer(mode, xproj, h0, c0, w_hh, b_hh, batch_sizes=None, reverse=False):
    """The oracle: torch's cell stepped over time with W_ih = I, active rows only."""
    T, B, GH = xproj.shape
    eye = torch.eye(GH, dtype=xproj.dtype)
    sizes = batch_sizes or [B] * T
    h, c = list(h0.unbind(0)), (list(c0.unbind(0)) if c0 is not None else None)
    ys = [None] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        n = sizes[t]
        if n == 0:
            ys[t] = torch.zeros(B, h0.shape[1], dtype=h0.dtype)
            continue
        hs = torch.stack(h[:n])
        if mode == "LSTM":
            hn, cn = TORCH_CELL[mode](xproj[t, :n], (hs, torch.stack(c[:n])), eye, w_hh, None, b_hh)
            c[:n] = cn.unbind(0)
        else:
            hn = TORCH_CELL[mode](xproj[t, :n], hs, eye, w_hh, None, b_hh)
        h[:n] = hn.unbind(0)
        ys[t] = torch.cat([hn, torch.zeros(B - n, hn.shape[1], dtype=hn.dtype)], 0)
    y, h_n = torch.stack(ys), torch.stack(h)
    return (y, h_n, torch.stack(c)) if mode == "LSTM" else (y, h_n)


def _layer_fn(mode, batch_sizes=None, reverse=False, bias=True):
    def fn(xproj, h0, *rest):
        c0 = rest[0] if mode == "LSTM" else None
        w_hh = rest[1] if mode == "LSTM" else rest[0]
        b_hh = rest[-1] if bias else None
        if isinstance(xproj, tinyml.Tensor):
            return R.rnn_layer(mode, xproj, h0, c0, w_hh, b_hh, batch_sizes, reverse)
        return torch_layer(mode, xproj, h0, c0, w_hh, b_hh, batch_sizes, reverse)

    return fn


def _shapes(mode, T, B, H, bias=True):
    G = R.GATES[mode]
    shapes = [(T, B, G * H), (B, H)] + ([(B, H)] if mode == "LSTM" else []) + [(G * H, H)]
    return shapes + ([(G * H,)] if bias else [])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_layer_against_torch(backend_device, mode, reverse):
    check_op(_shapes(mode, 5, 3, 6), _layer_fn(mode, reverse=reverse), device=backend_device, **RED)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_layer_packed_batch_sizes(backend_device, mode, reverse):
    """Rows stop at their own length; a reverse row starts from h0 at its last step."""
    sizes = [4, 4, 3, 1, 1, 0]
    check_op(_shapes(mode, 6, 4, 5), _layer_fn(mode, sizes, reverse), device=backend_device, **RED)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_rnn_layer_threaded_sizes_and_no_bias(backend_device, mode):
    """H = 70 splits unevenly over threads (slices of 16 units, a partial last GEMM panel); B H^2 G is
    past the parallel threshold."""
    check_op(_shapes(mode, 3, 5, 70), _layer_fn(mode), device=backend_device, low=-0.5, high=0.5, **RED)
    check_op(_shapes(mode, 4, 2, 3, bias=False), _layer_fn(mode, bias=False), device=backend_device, **RED)


@pytest.mark.parametrize("mode", MODES)
def test_rnn_layer_gradcheck_float64(backend_device, mode):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s) * 0.7 for s in _shapes(mode, 4, 3, 3)]
    inputs = [
        tinyml.tensor(a, dtype=tinyml.float64, device=backend_device).requires_grad_(True) for a in arrays
    ]
    fn = _layer_fn(mode, [3, 2, 2, 1], reverse=True)
    # tinyml.testing.gradcheck perturbs inputs through numpy views: cpu only; cuda checks float64 below
    if backend_device == "cpu":
        assert gradcheck(lambda *xs: tinyml.cat([o.reshape(-1) for o in fn(*xs)]), inputs)
    check_op(_shapes(mode, 3, 2, 4), _layer_fn(mode), device=backend_device, dtype="float64", **RED)


@pytest.mark.parametrize("name", ["lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell"])
def test_cells_against_torch(backend_device, name):
    G = 4 if name == "lstm_cell" else 3 if name == "gru_cell" else 1
    B, In, H = 3, 5, 4

    def fn(x, h, *rest):
        lib = R if isinstance(x, tinyml.Tensor) else torch
        if name == "lstm_cell":
            return getattr(lib, name)(x, (h, rest[0]), *rest[1:])
        return getattr(lib, name)(x, h, *rest)

    shapes = [(B, In), (B, H)] + ([(B, H)] if G == 4 else []) + [(G * H, In), (G * H, H), (G * H,), (G * H,)]
    check_op(shapes, fn, device=backend_device, **RED)


def test_nan_propagates(backend_device):
    x = np.zeros((3, 2, 8), np.float32)
    x[1, 0, 0] = np.nan
    xproj = tinyml.tensor(x, device=backend_device)
    z = tinyml.zeros((2, 2), device=backend_device)
    y, h, c = R.rnn_layer("LSTM", xproj, z, z, tinyml.zeros((8, 2), device=backend_device), None)
    y, c = y.cpu().numpy(), c.cpu()
    # step 1: NaN in row 0's first unit; step 2: the recurrent GEMM (NaN * 0 = NaN) spreads it over the row
    assert np.isnan(y[1, 0, 0]) and np.isnan(y[2, 0]).all() and not np.isnan(y[0]).any()
    assert not np.isnan(y[:, 1]).any()
    assert np.isnan(c.numpy()[0]).any() and not np.isnan(c.numpy()[1]).any()


def test_errors_name_the_values():
    z = tinyml.zeros((2, 3))
    with pytest.raises(ValueError, match="unknown mode 'LSTMX'"):
        R.rnn_layer("LSTMX", tinyml.zeros((1, 2, 12)), z, z, tinyml.zeros((12, 3)), None)
    with pytest.raises(ValueError, match=r"xproj \(1, 2, 10\) and h0 \(2, 3\)"):
        R.rnn_layer("LSTM", tinyml.zeros((1, 2, 10)), z, z, tinyml.zeros((12, 3)), None)
    with pytest.raises(ValueError, match="c0 must be None"):
        R.rnn_layer("GRU", tinyml.zeros((1, 2, 9)), z, z, tinyml.zeros((9, 3)), None)
    with pytest.raises(ValueError, match=r"w_hh \(12, 2\)"):
        R.rnn_layer("LSTM", tinyml.zeros((1, 2, 12)), z, z, tinyml.zeros((12, 2)), None)
    with pytest.raises(ValueError, match=r"batch_sizes \[1, 2\]"):
        R.rnn_layer("GRU", tinyml.zeros((2, 2, 9)), z, None, tinyml.zeros((9, 3)), None, batch_sizes=[1, 2])


def test_native_binding_checks_sizes():
    from tinyml.backends.cpu import _C

    if _C is None or not hasattr(_C, "rnn_forward"):
        pytest.skip("tinyml._C is not built with the rnn kernels")
    f = np.zeros
    with pytest.raises(ValueError, match=r"rnn: xproj has shape \(1, 2, 11\), expected \(1, 2, 12\)"):
        _C.rnn_forward(
            "LSTM",
            f((1, 2, 11), np.float32),
            f((2, 3), np.float32),
            f((2, 3), np.float32),
            f((12, 3), np.float32),
            None,
            None,
            False,
        )
    with pytest.raises(ValueError, match=r"rnn: w_hh has shape \(9, 2\)"):
        _C.rnn_forward(
            "GRU",
            f((1, 2, 9), np.float32),
            f((2, 3), np.float32),
            None,
            f((9, 2), np.float32),
            None,
            None,
            False,
        )
    with pytest.raises(ValueError, match="batch_sizes must be non-increasing"):
        _C.rnn_forward("GRU", f((2, 2, 9)), f((2, 3)), None, f((9, 3)), None, [1, 2], False)
    with pytest.raises(TypeError, match="expected dtype float"):
        _C.rnn_forward("RNN_TANH", f((1, 2, 3)), f((2, 3), np.float32), None, f((3, 3)), None, None, False)
    with pytest.raises(ValueError, match=r"rnn: saved has shape"):
        _C.rnn_backward(
            "LSTM",
            f((1, 2, 3)),
            f((2, 3)),
            None,
            f((2, 3)),
            f((2, 3)),
            f((12, 3)),
            None,
            None,
            False,
            f((1, 2, 3)),
            f((1, 2, 3)),
        )


def test_kernels_agree_across_backends():
    """The C++ kernel against the numpy reference on one larger case, threaded, forward and backward."""
    from tinyml.backends import implementations

    impls = implementations("rnn_forward")
    if "cpu" not in impls:
        pytest.skip("tinyml._C is not built")
    rng = np.random.default_rng(0)
    T, B, H = 4, 6, 48
    for mode in MODES:
        G = R.GATES[mode]
        args = [
            rng.standard_normal(s).astype(np.float32) * 0.5
            for s in [(T, B, G * H), (B, H), (B, H), (G * H, H), (G * H,)]
        ]
        c0 = args[2] if mode == "LSTM" else None
        sizes = (6, 5, 5, 2)
        outs = {
            k: impls[k](mode, args[0], args[1], c0, args[3], args[4], sizes, True)
            for k in ("reference", "cpu")
        }
        for a, b in zip(outs["cpu"], outs["reference"]):
            assert (a is None) == (b is None)
            if a is not None:
                assert_close(a, b, **RED)
        y, _, _, saved = outs["reference"]
        dy, dh = (
            rng.standard_normal(y.shape).astype(np.float32),
            rng.standard_normal((B, H)).astype(np.float32),
        )
        dc = dh.copy() if mode == "LSTM" else None
        grads = {
            k: implementations("rnn_backward")[k](
                mode, dy, dh, dc, args[1], c0, args[3], args[4], sizes, True, y, saved
            )
            for k in ("reference", "cpu")
        }
        for a, b in zip(grads["cpu"], grads["reference"]):
            if a is not None:
                assert_close(a, b, **RED)
