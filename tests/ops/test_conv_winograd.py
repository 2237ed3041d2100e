"""conv2d's Winograd path (csrc/conv_winograd.h): 3x3, stride 1, groups 1, forward and input
gradient, forced through the bindings' `algo` (2: F(2x2, 3x3), 4: F(4x4, 3x3), 1: implicit GEMM)
and chosen automatically (algo 0) once both channel counts reach 16.

Tolerances: F(2, 3) is held to the GEMM path's own (close_scaled, float32 "reduction"). F(4, 3)
rounds worse (its transforms weigh values by up to 5 and 1/24): measured at up to ~8e-6 of the
largest output at C = 64 in float32, so it is checked against the float64 reference with an
absolute tolerance of 5e-5 of that largest value (and float64 at the usual table).
"""
import numpy as np
import pytest
from cpu_kernel_helpers import _C, close_scaled, impls, needs_C

from tinyml.testing import assert_close

_RNG = np.random.default_rng(16)

# x shape, O, top/left pad, bottom/right pad: pads 0..2, sizes off the 2x2/4x4 tiles and the 32-tile
# task blocks, channel counts off the 8-row register tile
CASES = [
    ((2, 16, 13, 11), 20, 1, 1),
    ((3, 24, 9, 17), 16, 0, 2),
    ((1, 17, 20, 20), 19, 2, 0),
    ((2, 16, 5, 4), 16, 1, 1),
    ((1, 32, 30, 7), 24, 0, 0),
    # panels as runs along tile rows (conv_winograd_rows.h, 16-lane float32 / 8-lane float64 panels):
    # 16 and 30 tiles a row, 28 (56 columns: runs that cross a tile-row end at varying lanes, the
    # bench's shape), 9 (F(2, 3) float32: three runs in a panel) and 7 (four: the tile-by-tile gather)
    ((1, 16, 7, 32), 16, 1, 1),
    ((2, 16, 6, 60), 17, 1, 1),
    ((1, 16, 6, 56), 16, 1, 1),
    ((2, 16, 7, 18), 16, 1, 1),
    ((1, 16, 5, 14), 16, 2, 0),
]


def _data(xs, o, dtype):
    x = _RNG.standard_normal(xs).astype(dtype)
    w = (_RNG.standard_normal((o, xs[1], 3, 3)) * 0.2).astype(dtype)
    b = _RNG.standard_normal(o).astype(dtype)
    return x, w, b


def _ref(x, w, b, lo, hi):
    """The numpy reference's forward in float64."""
    _, ref = impls("conv2d_forward")
    b64 = None if b is None else b.astype(np.float64)
    return ref(x.astype(np.float64), w.astype(np.float64), b64, (1, 1), (lo, hi, lo, hi), (1, 1), 1)


def _ref_dx(x, w, dy, lo, hi):
    _, ref = impls("conv2d_backward")
    return ref(x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64), (1, 1), (lo, hi, lo, hi),
               (1, 1), 1, (True, False, False))[0]


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xs,o,lo,hi", CASES)
def test_winograd_forward_and_input_gradient(dtype, xs, o, lo, hi):
    x, w, b = _data(xs, o, dtype)
    y64 = _ref(x, w, b, lo, hi)
    oh, ow = y64.shape[2:]
    dy = _RNG.standard_normal(y64.shape).astype(dtype)
    dx64 = _ref_dx(x, w, dy, lo, hi)
    for algo in (2, 4):
        y = _C.conv2d_forward(x, w, b, 1, 1, lo, lo, 1, 1, 1, oh, ow, algo=algo)
        dx, dw = _C.conv2d_backward(x, w, dy, 1, 1, lo, lo, 1, 1, 1, True, False, algo=algo)
        assert dw is None and y.dtype == x.dtype and dx.dtype == x.dtype
        if algo == 2 or dtype == "float64":
            close_scaled(y, y64.astype(dtype), dtype)
            close_scaled(dx, dx64.astype(dtype), dtype)
        else:
            for got, want in ((y, y64), (dx, dx64)):
                assert_close(got, want.astype(dtype), rtol=1e-4, atol=5e-5 * float(np.abs(want).max()))


@needs_C
def test_winograd_is_chosen_for_wide_3x3_and_matches_gemm():
    x, w, b = _data((2, 16, 12, 10), 16, "float32")
    y_auto = _C.conv2d_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1, 12, 10)
    assert np.array_equal(y_auto, _C.conv2d_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1, 12, 10, algo=2))
    close_scaled(y_auto, _C.conv2d_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1, 12, 10, algo=1), "float32")
    dy = _RNG.standard_normal(y_auto.shape).astype(np.float32)
    dx_auto, dw_auto = _C.conv2d_backward(x, w, dy, 1, 1, 1, 1, 1, 1, 1, True, True)
    dx_w, dw_w = _C.conv2d_backward(x, w, dy, 1, 1, 1, 1, 1, 1, 1, True, True, algo=2)
    assert np.array_equal(dx_auto, dx_w) and np.array_equal(dw_auto, dw_w)  # dw is the GEMM's either way


@needs_C
@pytest.mark.parametrize("hw", [(4, 4), (6, 8), (2, 24)])
def test_small_maps_run_the_gemm(hw):
    """Under 49 outputs per map the GEMM is the faster path (conv_winograd.h), and the automatic choice takes
    it: for 16 channels the one read from input slabs (conv_slab.h), whose forward has the im2col GEMM's
    bits and whose input gradient is a forward of dy."""
    h, w_ = hw
    x, w, b = _data((2, 16, h, w_), 16, "float32")
    y_auto = _C.conv2d_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1, h, w_)
    assert np.array_equal(y_auto, _C.conv2d_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1, h, w_, algo=1))
    dy = _RNG.standard_normal(y_auto.shape).astype(np.float32)
    dx_auto, _ = _C.conv2d_backward(x, w, dy, 1, 1, 1, 1, 1, 1, 1, True, False)
    assert np.array_equal(dx_auto, _C.conv2d_backward(x, w, dy, 1, 1, 1, 1, 1, 1, 1, True, False, algo=3)[0])


@needs_C
@pytest.mark.parametrize("algo", [2, 4])
def test_winograd_keeps_nan_and_inf_local(algo):
    """A non-finite input reaches exactly the outputs whose window holds it (as direct summation):
    those tiles are summed directly instead of through the transforms."""
    x, w, b = _data((1, 16, 14, 13), 16, "float32")
    x[0, 3, 6, 7] = np.nan
    x[0, 5, 0, 0] = np.inf
    y = _C.conv2d_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1, 14, 13, algo=algo)
    y_gemm = _C.conv2d_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1, 14, 13, algo=1)
    assert np.array_equal(np.isnan(y), np.isnan(y_gemm)) and np.array_equal(np.isinf(y), np.isinf(y_gemm))
    assert np.isnan(y[0, :, 5:8, 6:9]).all() and not np.isnan(y[0, :, 9:]).any()
    finite = np.isfinite(y_gemm)
    close_scaled(y[finite], y_gemm[finite], "float32")


@needs_C
@pytest.mark.parametrize("algo", [2, 4])
@pytest.mark.parametrize("wd", [32, 56, 18])
def test_winograd_row_panels_keep_nan_and_inf_local(algo, wd):
    """The same on images wide enough for panels by runs along tile rows (32 columns: 16 or 8 tiles a
    row; 56: 28 or 14, runs crossing tile-row ends; 18: 9 or 5 tiles, up to three runs a panel)."""
    x, w, b = _data((1, 16, 9, wd), 16, "float32")
    x[0, 3, 4, 17] = np.nan
    x[0, 5, 8, wd - 1] = -np.inf
    y = _C.conv2d_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1, 9, wd, algo=algo)
    y_gemm = _C.conv2d_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1, 9, wd, algo=1)
    assert np.array_equal(np.isnan(y), np.isnan(y_gemm)) and np.array_equal(np.isinf(y), np.isinf(y_gemm))
    assert np.isnan(y[0, :, 3:6, 16:18]).all() and not np.isnan(y[0, :, :3]).any()
    finite = np.isfinite(y_gemm)
    close_scaled(y[finite], y_gemm[finite], "float32")


@needs_C
def test_winograd_algo_errors():
    x, w = np.zeros((1, 16, 6, 6), np.float32), np.zeros((16, 16, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"algo=2 \(Winograd\) needs a 3x3 kernel, stride 1.*groups 1"):
        _C.conv2d_forward(x, w, None, 2, 2, 1, 1, 1, 1, 1, 3, 3, algo=2)
    with pytest.raises(ValueError, match=r"pads \(3, 1\)"):
        dy = np.zeros((1, 16, 10, 8), np.float32)
        _C.conv2d_backward(x, w, dy, 1, 1, 3, 1, 1, 1, 1, True, False, algo=4)
    with pytest.raises(ValueError, match="algo must be 0, 1, 2, 3 or 4, got 5"):
        _C.conv2d_forward(x, w, None, 1, 1, 1, 1, 1, 1, 1, 6, 6, algo=5)


@needs_C
@pytest.mark.parametrize("hw", [(9, 8), (4, 4)])  # Winograd's choice, then the slab path's (small map)
def test_non_finite_weights_take_the_gemm_path(hw):
    """Automatic choice: a weight with inf/NaN makes every output of its channel non-finite the way
    direct summation does, so the implicit GEMM runs (forward and input gradient: neither Winograd nor
    the slab input gradient, which would multiply the inf by dy's zero padding)."""
    h, w_ = hw
    x, w, b = _data((1, 16, h, w_), 16, "float32")
    w[2, 4, 1, 1] = np.inf
    w[5, 0, 0, 2] = np.nan
    y = _C.conv2d_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1, h, w_)
    assert np.array_equal(y, _C.conv2d_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1, h, w_, algo=1), equal_nan=True)
    dy = _RNG.standard_normal(y.shape).astype(np.float32)
    dx = _C.conv2d_backward(x, w, dy, 1, 1, 1, 1, 1, 1, 1, True, False)[0]
    dx_gemm = _C.conv2d_backward(x, w, dy, 1, 1, 1, 1, 1, 1, 1, True, False, algo=1)[0]
    assert np.array_equal(dx, dx_gemm, equal_nan=True)
