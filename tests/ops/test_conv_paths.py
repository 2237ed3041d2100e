"""conv2d's implicit-GEMM kernels (csrc/conv.cpp, conv_im2col.h, conv_slab.h) path by path: im2col and
col2im by runs of output rows (strides, dilations, paddings wider than the kernel reach, groups), and the
weight gradient read from zero-padded input slabs split by column phase, summed in fixed chunks:
against the float64 numpy reference, and bit-identical for any thread count and with or without the
two-tile micro-kernels (conv_gemm.h's micro2 / micro_rows2, the AVX-512 default)."""
import numpy as np
import pytest
from cpu_kernel_helpers import _C, close_scaled, impls, needs_C

import tinyml

_RNG = np.random.default_rng(61)

# x shape, weight shape, stride, padding (top, bottom, left, right), dilation, groups
CASES = [
    ((2, 5, 11, 13), (7, 5, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
    ((1, 4, 9, 10), (6, 2, 3, 2), (1, 3), (2, 0, 3, 1), (2, 1), 2),
    ((3, 3, 8, 7), (17, 3, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((1, 6, 12, 12), (20, 6, 5, 5), (3, 2), (4, 4, 4, 4), (1, 2), 1),
    ((2, 8, 5, 150), (9, 8, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # rows wider than a block
    ((1, 3, 2, 2), (4, 3, 3, 3), (1, 1), (3, 3, 3, 3), (1, 1), 1),  # padding past the kernel's reach
    # stride-2 rows wider than a vector (im2col's and col2im's vector paths, copy_every_other and
    # add_every_other), with the scalar tails at either end of a row
    ((2, 3, 9, 75), (5, 3, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
    ((1, 2, 6, 70), (3, 2, 3, 4), (1, 2), (0, 0, 2, 1), (1, 1), 1),
    # kernels under the stride: phases of dx that no tap reaches (conv_slab.h's input gradient, algo=3)
    ((1, 4, 8, 8), (5, 4, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),
    ((2, 3, 9, 10), (4, 3, 2, 2), (3, 3), (0, 1, 0, 2), (1, 1), 1),
    ((1, 4, 7, 9), (6, 2, 3, 3), (2, 1), (1, 1, 1, 1), (1, 1), 2),  # groups, dilation 1
]


def _out(x, w, stride, pads, dil):
    reach = [dil[a] * (w.shape[2 + a] - 1) + 1 for a in range(2)]
    padded = [x.shape[2 + a] + pads[2 * a] + pads[2 * a + 1] for a in range(2)]
    return tuple((padded[a] - reach[a]) // stride[a] + 1 for a in range(2))


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xs,ws,stride,pads,dil,groups", CASES)
def test_gemm_paths_match_the_reference(dtype, xs, ws, stride, pads, dil, groups):
    x = _RNG.standard_normal(xs).astype(dtype)
    w = (_RNG.standard_normal(ws) * 0.3).astype(dtype)
    b = _RNG.standard_normal(ws[0]).astype(dtype)
    oh, ow = _out(x, w, stride, pads, dil)
    dy = _RNG.standard_normal((xs[0], ws[0], oh, ow)).astype(dtype)
    _, ref_f = impls("conv2d_forward")
    _, ref_b = impls("conv2d_backward")
    f64 = [a.astype(np.float64) for a in (x, w, b, dy)]
    y64 = ref_f(f64[0], f64[1], f64[2], stride, pads, dil, groups)
    dx64, dw64, _ = ref_b(f64[0], f64[1], f64[3], stride, pads, dil, groups, (True, True, False))
    geo = (stride[0], stride[1], pads[0], pads[2], dil[0], dil[1], groups)
    y = _C.conv2d_forward(x, w, b, *geo, oh, ow, algo=1)
    dx, dw = _C.conv2d_backward(x, w, dy, *geo, True, True, algo=1)
    close_scaled((y, dx, dw), (y64.astype(dtype), dx64.astype(dtype), dw64.astype(dtype)), dtype)
    # the forward read from input slabs (conv_slab.h) makes the same FMA chains: the same bits, with and
    # without the bias (no + 0 that would turn a -0.0 sum into +0.0)
    for bias in (b, None):
        want = _C.conv2d_forward(x, w, bias, *geo, oh, ow, algo=1)
        got = _C.conv2d_forward(x, w, bias, *geo, oh, ow, algo=3)
        assert np.array_equal(got.view(np.uint8), want.view(np.uint8))
    # the input gradient as slab forwards of dy, one per phase of the stride (dilation 1; else im2col):
    # the same sums in another order
    dx3, dw3 = _C.conv2d_backward(x, w, dy, *geo, True, True, algo=3)
    close_scaled((dx3, dw3), (dx64.astype(dtype), dw64.astype(dtype)), dtype)


@needs_C
def test_weight_gradient_is_bit_identical_for_any_thread_count():
    """The weight gradient's tasks are summed in fixed chunks (each its own accumulator, then in
    chunk order), so a dynamic schedule gives the same bits on 1 or 2 threads and on every run."""
    x = _RNG.standard_normal((4, 8, 20, 21)).astype(np.float32)
    w = _RNG.standard_normal((12, 8, 3, 3)).astype(np.float32)
    before = tinyml.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 2):
            tinyml.set_num_threads(threads)
            for s in (1, 2):
                oh, ow = (20 - 1) // s + 1, (21 - 1) // s + 1
                dy = np.random.default_rng(s).standard_normal((4, 12, oh, ow)).astype(np.float32)
                results.append(_C.conv2d_backward(x, w, dy, s, s, 1, 1, 1, 1, 1, False, True)[1])
    finally:
        tinyml.set_num_threads(before)
    for i in range(2, len(results)):
        assert np.array_equal(results[i], results[i % 2])


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xs,o,stride", [((2, 16, 13, 56), 40, 1), ((1, 9, 11, 37), 33, 1),
                                        ((2, 8, 21, 19), 17, 2), ((1, 5, 7, 300), 70, 1)])
def test_two_tile_kernels_give_the_same_bits(dtype, xs, o, stride):
    """Every output is the same FMA chain over k with one B tile or two at once: forward (implicit GEMM
    over im2col blocks and over input slabs, both Winograd sizes), input and weight gradients agree bit
    for bit, and the two forward GEMMs with each other. Channel and column counts leave odd tiles (o = 17,
    33, 40, 70 against 8-row and 16/8-lane tiles)."""
    x = _RNG.standard_normal(xs).astype(dtype)
    w = (_RNG.standard_normal((o, xs[1], 3, 3)) * 0.3).astype(dtype)
    b = _RNG.standard_normal(o).astype(dtype)
    oh, ow = (xs[2] - 1) // stride + 1, (xs[3] - 1) // stride + 1
    dy = _RNG.standard_normal((xs[0], o, oh, ow)).astype(dtype)
    geo = (stride, stride, 1, 1, 1, 1, 1)
    results = {}
    try:
        for wide in (0, 1):
            assert _C.conv2d_wide_kernels(wide) == bool(wide)
            for algo in ((1, 2, 3, 4) if stride == 1 else (1, 3)):
                results[wide, algo] = (_C.conv2d_forward(x, w, b, *geo, oh, ow, algo=algo),
                                       *_C.conv2d_backward(x, w, dy, *geo, True, True, algo=algo))
    finally:
        _C.conv2d_wide_kernels(-1)
    for (wide, algo), got in results.items():
        for a, want in zip(got, results[0, algo]):
            assert np.array_equal(a, want), (wide, algo)
        assert np.array_equal(results[wide, 3][0], results[wide, 1][0]), wide  # slab = im2col forward


@needs_C
def test_wide_kernels_mode_errors():
    with pytest.raises(ValueError, match="mode must be -1, 0 or 1, got 2"):
        _C.conv2d_wide_kernels(2)
