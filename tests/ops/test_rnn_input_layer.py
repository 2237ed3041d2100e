"""ops.rnn.rnn_input_layer (kernels rnn_layer_forward / rnn_layer_backward: one layer and direction
from its input x, with the input projection x W_ih^T + b_ih inside the kernel) against PyTorch (its
cells stepped over F.linear's projection, the oracle of test_rnn.py), forward and backward on every
backend of the family; gradcheck in float64; the C++ kernel against the numpy reference; size checks
of the binding; outputs of the cpu kernel's buffer cache stay independent across calls."""

import numpy as np
import pytest
import torch
from family_devices import backend_device_fixture
from helpers import check_op
from test_rnn import MODES, torch_layer

import tinyml
from tinyml.ops import rnn as R
from tinyml.testing import assert_close, gradcheck

backend_device = backend_device_fixture()
RED = {"kind": "reduction"}


def _input_fn(mode, batch_sizes=None, reverse=False, bias=True):
    """fn(x, w_ih, [b_ih], h0, [c0], w_hh, [b_hh]) for tinyml (rnn_input_layer) and torch."""

    def fn(x, w_ih, *rest):
        rest = list(rest)
        b_ih = rest.pop(0) if bias else None
        h0 = rest.pop(0)
        c0 = rest.pop(0) if mode == "LSTM" else None
        w_hh = rest.pop(0)
        b_hh = rest.pop(0) if bias else None
        if isinstance(x, tinyml.Tensor):
            return R.rnn_input_layer(mode, x, w_ih, b_ih, h0, c0, w_hh, b_hh, batch_sizes, reverse)
        xproj = torch.nn.functional.linear(x, w_ih, b_ih)
        return torch_layer(mode, xproj, h0, c0, w_hh, b_hh, batch_sizes, reverse)

    return fn


def _shapes(mode, T, B, In, H, bias=True):
    GH = R.GATES[mode] * H
    shapes = [(T, B, In), (GH, In)] + ([(GH,)] if bias else []) + [(B, H)]
    shapes += ([(B, H)] if mode == "LSTM" else []) + [(GH, H)]
    return shapes + ([(GH,)] if bias else [])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_input_layer_against_torch(backend_device, mode, reverse):
    check_op(_shapes(mode, 5, 3, 7, 6), _input_fn(mode, reverse=reverse), device=backend_device, **RED)
    sizes = [4, 4, 3, 1, 1, 0]  # a packed sequence: rows stop at their own length
    check_op(_shapes(mode, 6, 4, 3, 5), _input_fn(mode, sizes, reverse), device=backend_device, **RED)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_rnn_input_layer_threaded_sizes_and_no_bias(backend_device, mode):
    """H = 70, I = 33: uneven unit slices and partial GEMM panels, past the parallel threshold."""
    if backend_device == "cuda":
        pytest.skip("the thread split is the C++ kernel's; the Triton path (matmul + rnn_forward) is above")
    check_op(_shapes(mode, 3, 5, 33, 70), _input_fn(mode), device=backend_device, low=-0.5, high=0.5, **RED)
    check_op(_shapes(mode, 4, 2, 5, 3, bias=False), _input_fn(mode, bias=False), device=backend_device, **RED)


@pytest.mark.parametrize("mode", MODES)
def test_rnn_input_layer_gradcheck_float64(backend_device, mode):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s) * 0.7 for s in _shapes(mode, 4, 3, 2, 3)]
    fn = _input_fn(mode, [3, 2, 2, 1], reverse=True)
    if backend_device != "cpu":  # gradcheck perturbs through numpy views, and the Triton matmul
        pytest.skip("the cuda input projection (the Triton matmul, as F.linear's) has no float64")
    inputs = [tinyml.tensor(a, dtype=tinyml.float64).requires_grad_(True) for a in arrays]
    assert gradcheck(lambda *xs: tinyml.cat([o.reshape(-1) for o in fn(*xs)]), inputs)
    check_op(_shapes(mode, 3, 2, 5, 4), _input_fn(mode), device=backend_device, dtype="float64", **RED)


def _kernel_args(rng, mode, T, B, In, H, dtype=np.float32):
    GH = R.GATES[mode] * H
    shapes = [(T, B, In), (GH, In), (GH,), (B, H), (B, H), (GH, H), (GH,)]
    x, w_ih, b_ih, h0, c0, w_hh, b_hh = (rng.standard_normal(s).astype(dtype) * 0.5 for s in shapes)
    return x, w_ih, b_ih, h0, c0 if mode == "LSTM" else None, w_hh, b_hh


def test_kernels_agree_across_backends():
    """The C++ kernels against the numpy reference on a larger threaded case, forward and backward."""
    from tinyml.backends import implementations

    fwd, bwd = implementations("rnn_layer_forward"), implementations("rnn_layer_backward")
    if "cpu" not in fwd:
        pytest.skip("tinyml._C is not built")
    rng = np.random.default_rng(0)
    T, B, In, H, sizes = 4, 6, 40, 48, (6, 5, 5, 2)
    for mode in MODES:
        args = _kernel_args(rng, mode, T, B, In, H)
        outs = {k: fwd[k](mode, *args, sizes, True) for k in ("reference", "cpu")}
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
        grads = {k: bwd[k](mode, dy, dh, dc, *args, sizes, True, y, saved) for k in ("reference", "cpu")}
        assert len(grads["cpu"]) == 7
        for a, b in zip(grads["cpu"], grads["reference"]):
            assert (a is None) == (b is None)
            if a is not None:
                assert_close(a, b, **RED)


def test_kept_outputs_stay_independent_when_malloc_reuses_blocks():
    """malloc hands freed blocks of the same size to the next call (tinyml keeps them mapped):
    results kept from one call must not change in the next."""
    from tinyml.backends.cpu import _C

    if _C is None:
        pytest.skip("tinyml._C is not built")
    rng = np.random.default_rng(1)
    args = _kernel_args(rng, "LSTM", 6, 4, 9, 20)
    first = [a.copy() for a in _C.rnn_layer_forward("LSTM", *args, None, False)]
    kept = _C.rnn_layer_forward("LSTM", *args, None, False)
    for _ in range(3):  # free and reuse blocks of the same sizes, with other inputs
        other = _kernel_args(rng, "LSTM", 6, 4, 9, 20)
        _C.rnn_layer_forward("LSTM", *other, None, False)
    for a, b in zip(kept, first):
        np.testing.assert_array_equal(a, b)
    assert all(a.flags.writeable and a.flags.c_contiguous for a in kept)


def test_errors_name_the_values():
    z = tinyml.zeros((2, 3))
    with pytest.raises(ValueError, match=r"x \(1, 2, 5\), w_ih \(12, 4\)"):
        R.rnn_input_layer(
            "LSTM", tinyml.zeros((1, 2, 5)), tinyml.zeros((12, 4)), None, z, z, tinyml.zeros((12, 3)), None
        )
    with pytest.raises(ValueError, match=r"xproj \(1, 2, 10\) and h0 \(2, 3\)"):
        R.rnn_input_layer(
            "LSTM", tinyml.zeros((1, 2, 4)), tinyml.zeros((10, 4)), None, z, z, tinyml.zeros((10, 3)), None
        )
    from tinyml.backends.cpu import _C

    if _C is None:
        return
    f = np.zeros
    with pytest.raises(ValueError, match=r"rnn: w_ih has shape \(12, 5\), expected \(12, 4\)"):
        _C.rnn_layer_forward(
            "LSTM", f((1, 2, 4)), f((12, 5)), None, f((2, 3)), f((2, 3)), f((12, 3)), None, None, False
        )
    with pytest.raises(ValueError, match=r"rnn: x has shape \(1, 3, 4\), expected \(1, 2, 4\)"):
        _C.rnn_layer_backward(
            "GRU",
            f((1, 2, 3)),
            f((2, 3)),
            None,
            f((1, 3, 4)),
            f((9, 4)),
            None,
            f((2, 3)),
            None,
            f((9, 3)),
            None,
            None,
            False,
            f((1, 2, 3)),
            f((1, 2, 12)),
        )
    with pytest.raises(TypeError, match="expected dtype float"):
        _C.rnn_layer_forward(
            "GRU", f((1, 2, 4)), f((9, 4), np.float32), None, f((2, 3)), None, f((9, 3)), None, None, False
        )
