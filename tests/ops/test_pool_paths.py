"""The special paths of the C++ pool and upsample kernels (csrc/pool_max.h, pool_upsample.h):
max_pool2d 2x2 stride 2 (one pass forward; backward as a gather, falling back to the scatter for
indices of another geometry), nearest upsampling by integer factors (copies and block sums) and
bilinear upsampling run separably (doubled widths by a fixed column stencil), against PyTorch and the
numpy references."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import _C, close_scaled, impls, needs_C

_RNG = np.random.default_rng(23)


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hw", [(8, 16), (9, 7), (5, 34), (2, 2), (13, 27)])
def test_max_pool_2x2_matches_torch_bit_for_bit(dtype, hw):
    """Values, indices and gradient as PyTorch's on ties, NaNs and signed zeros; odd sizes leave a
    last row/column in no window; widths on and off the 8-output vectors."""
    x = _RNG.integers(-2, 3, (2, 3) + hw).astype(dtype)  # small integers: many ties
    x[_RNG.random(x.shape) < 0.05] = np.nan
    ty, ti = TF.max_pool2d(torch.tensor(x), 2, 2, return_indices=True)
    y, idx = _C.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1, *ty.shape[2:])
    assert np.array_equal(idx, ti.numpy()) and np.array_equal(y, ty.numpy(), equal_nan=True)
    dy = _RNG.standard_normal(y.shape).astype(dtype)
    dy[0, 0, 0, :] = -0.0  # 0 + -0 = +0, as the scatter into zeros gives
    xt = torch.tensor(x, requires_grad=True)
    TF.max_pool2d(xt, 2, 2).backward(torch.tensor(dy))
    dx = _C.max_pool2d_backward(dy, idx, *hw)
    assert np.array_equal(dx.view(np.uint64 if dtype == "float64" else np.uint32),
                          xt.grad.numpy().view(np.uint64 if dtype == "float64" else np.uint32))


@needs_C
def test_max_pool_backward_scatters_indices_outside_the_2x2_windows():
    """Indices from a pooling with the same output size but wider windows (3x3, stride 2, pad 1)
    are not in their own 2x2 block: those planes are scattered, overlapping windows add up."""
    x = _RNG.standard_normal((2, 3, 8, 10)).astype(np.float32)
    _, ref_f = impls("max_pool2d_forward")
    cpu_b, ref_b = impls("max_pool2d_backward")
    _, idx = ref_f(x, (3, 3), (2, 2), (1, 1), (1, 1), False)
    assert idx.shape[2:] == (4, 5)
    dy = _RNG.standard_normal(idx.shape).astype(np.float32)
    close_scaled(cpu_b(dy, idx, x.shape), ref_b(dy, idx, x.shape), "float32")  # the reference sums in float64
    idx[1, 2, 0, 0] = 99  # outside the plane: refused
    with pytest.raises(ValueError, match=r"index 99 at flat position 100 is outside \[-1, 80\)"):
        _C.max_pool2d_backward(dy, idx, 8, 10)


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size,factor", [((5, 6), (2, 2)), ((4, 3), (3, 2)), ((3, 5), (1, 3)),
                                         ((4, 4), (1.5, 2.5))])
def test_nearest_upsample_factors(dtype, size, factor):
    """Integer factors copy and block-sum (the same sums in the scatter's order); others gather."""
    x = _RNG.standard_normal((2, 3) + size).astype(dtype)
    out = tuple(int(s * f) for s, f in zip(size, factor))
    cpu, ref = impls("upsample2d_forward")
    y = cpu(x, out, "nearest", None, factor)
    ty = TF.interpolate(torch.tensor(x), scale_factor=factor, mode="nearest")
    assert np.array_equal(y, ty.numpy()) and np.array_equal(y, ref(x, out, "nearest", None, factor))
    dy = _RNG.standard_normal(y.shape).astype(dtype)
    cpu, ref = impls("upsample2d_backward")
    xt = torch.tensor(x, requires_grad=True)
    TF.interpolate(xt, scale_factor=factor, mode="nearest").backward(torch.tensor(dy))
    dx = cpu(dy, x.shape, "nearest", None, factor)
    close_scaled(dx, xt.grad.numpy(), dtype)
    close_scaled(dx, ref(dy, x.shape, "nearest", None, factor), dtype)


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size,out,ac", [((5, 6), (10, 12), False), ((7, 4), (3, 9), False),
                                         ((4, 5), (9, 13), True), ((1, 6), (4, 6), False)])
def test_bilinear_upsample_separable(dtype, size, out, ac):
    x = _RNG.standard_normal((2, 3) + size).astype(dtype)
    x[0, 1, 0, 2] = np.inf
    cpu, _ = impls("upsample2d_forward")
    y = cpu(x, out, "bilinear", ac, (None, None))
    xt = torch.tensor(x, requires_grad=True)
    ty = TF.interpolate(xt, size=out, mode="bilinear", align_corners=ac)
    assert np.array_equal(np.isnan(y), np.isnan(ty.detach().numpy()))
    finite = np.isfinite(y)
    close_scaled(y[finite], ty.detach().numpy()[finite], dtype)
    dy = _RNG.standard_normal(y.shape).astype(dtype)
    dy[1, 2, 0, 0] = np.nan
    ty.backward(torch.tensor(dy))
    cpu, _ = impls("upsample2d_backward")
    dx = cpu(dy, x.shape, "bilinear", ac, (None, None))
    g = xt.grad.numpy()
    assert np.array_equal(np.isnan(dx), np.isnan(g))
    close_scaled(dx[~np.isnan(g)], g[~np.isnan(g)], dtype)


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("w", [4, 5, 17, 19, 20, 40, 56])
@pytest.mark.parametrize("ac", [False, True])
def test_bilinear_2x_column_stencil(dtype, w, ac):
    """Widths doubled: the column taps are a fixed stencil (pool_upsample.h: the forward's row pass by
    loads and lane-doubling shuffles, the float32 backward's column sums by vectors of columns), on
    widths around the 16- and 8-lane vectors and the first/last columns' special sources; NaN, inf
    and -0 where they fall."""
    x = _RNG.standard_normal((2, 3, 5, w)).astype(dtype)
    x[0, 1, 2, w // 2] = np.inf
    x[1, 0, 0, 0] = np.nan
    x[1, 2, 4, w - 1] = -0.0
    out = (10, 2 * w)
    cpu, ref = impls("upsample2d_forward")
    y = cpu(x, out, "bilinear", ac, (None, None))
    xt = torch.tensor(x, requires_grad=True)
    ty = TF.interpolate(xt, size=out, mode="bilinear", align_corners=ac)
    assert np.array_equal(np.isnan(y), np.isnan(ty.detach().numpy()))
    finite = np.isfinite(y)
    close_scaled(y[finite], ty.detach().numpy()[finite], dtype)
    close_scaled(y[finite], ref(x, out, "bilinear", ac, (None, None))[finite], dtype)
    dy = _RNG.standard_normal(y.shape).astype(dtype)
    dy[0, 0, 3, 2 * w - 2] = np.inf
    dy[1, 1, 9, 1] = np.nan
    ty.backward(torch.tensor(dy))
    cpu, ref = impls("upsample2d_backward")
    dx = cpu(dy, x.shape, "bilinear", ac, (None, None))
    g = xt.grad.numpy()
    assert np.array_equal(np.isnan(dx), np.isnan(g)) and np.array_equal(np.isinf(dx), np.isinf(g))
    finite = np.isfinite(g)
    close_scaled(dx[finite], g[finite], dtype)
    close_scaled(dx[finite], ref(dy, x.shape, "bilinear", ac, (None, None))[finite], dtype)


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_pool_2x2_backward_refuses_an_index_off_by_2_to_the_32(dtype):
    """The gather compares window offsets in T-wide integers after a range check in int64: an index
    2**32 past the right one (the same low 32 bits) is not taken for it, but refused."""
    x = _RNG.standard_normal((1, 2, 6, 20)).astype(dtype)
    _, idx = _C.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1, 3, 10)
    dy = _RNG.standard_normal(idx.shape).astype(dtype)
    idx[0, 1, 2, 9] += 2 ** 32
    with pytest.raises(ValueError, match=r"is outside \[-1, 120\)"):
        _C.max_pool2d_backward(dy, idx, 6, 20)


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size,out", [((6, 4), (13, 7)), ((5, 4), (11, 8)), ((7, 9), (3, 15)),
                                      ((4, 8), (9, 16)), ((6, 9), (12, 17)), ((3, 20), (7, 33)),
                                      ((8, 3), (2, 40))])
@pytest.mark.parametrize("ac", [False, True])
def test_bilinear_backward_rows_gathered(dtype, size, out, ac):
    """The backward's row pass gathers each input row's sources (output rows in the scatter's order)
    a vector of columns at a time, the last vector overlapping; output rows narrower than a vector
    scatter as before. Output widths around the 16- and 8-lane vectors, heights that up- and
    downsample (input rows with no source: 0); NaN and inf in dy."""
    x = _RNG.standard_normal((2, 3) + size).astype(dtype)
    dy = _RNG.standard_normal((2, 3) + out).astype(dtype)
    dy[0, 1, out[0] // 2, out[1] - 1] = np.inf
    dy[1, 0, 0, 0] = np.nan
    xt = torch.tensor(x, requires_grad=True)
    TF.interpolate(xt, size=out, mode="bilinear", align_corners=ac).backward(torch.tensor(dy))
    cpu, ref = impls("upsample2d_backward")
    dx = cpu(dy, x.shape, "bilinear", ac, (None, None))
    g = xt.grad.numpy()
    assert np.array_equal(np.isnan(dx), np.isnan(g)) and np.array_equal(np.isinf(dx), np.isinf(g))
    finite = np.isfinite(g)
    close_scaled(dx[finite], g[finite], dtype)
    close_scaled(dx[finite], ref(dy, x.shape, "bilinear", ac, (None, None))[finite], dtype)
