"""The C++ conv / pool / upsample / selective-scan kernels (csrc/conv.cpp, csrc/pool.cpp, csrc/scan.cpp) against
their numpy references, kernel by kernel, and the bindings' argument checks."""
import numpy as np
import pytest

from tinyml.backends import implementations
from tinyml.backends.cpu import _C
from tinyml.testing import assert_close, tolerance

pytestmark = pytest.mark.skipif(_C is None, reason="tinyml._C is not built")


def both(name):
    impls = implementations(name)
    assert "cpu" in impls, f"no C++ kernel registered for {name}"
    return impls["cpu"], impls["reference"]


def close(a, b, dtype):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if y is None:
            assert x is None
            continue
        assert x.shape == y.shape and x.dtype == y.dtype, (x.shape, y.shape, x.dtype, y.dtype)
        # long sums (dw over batch x positions) cancel: their error scales with the largest entry
        rtol, atol = tolerance(np.dtype(dtype).name, "reduction")
        scale = float(np.abs(y).max()) if y.size and y.dtype.kind == "f" else 0.0
        assert_close(x, y, rtol=rtol, atol=max(atol, 0.1 * rtol * scale))


RNG = np.random.default_rng(0)

CONV = [  # x shape, w shape, stride, pads (t, b, l, r), dilation, groups
    ((2, 3, 9, 11), (5, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((3, 4, 13, 7), (6, 2, 3, 2), (2, 3), (2, 1, 0, 3), (2, 1), 2),
    ((1, 8, 17, 17), (8, 1, 5, 5), (2, 2), (2, 2, 2, 2), (1, 1), 8),
    ((2, 6, 5, 6), (4, 6, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((2, 6, 7, 6), (4, 3, 1, 1), (2, 1), (1, 0, 0, 1), (1, 1), 2),
    ((40, 3, 31, 29), (7, 3, 4, 3), (1, 2), (1, 2, 0, 1), (1, 3), 1),  # several im2col chunks
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xs,ws,stride,pads,dil,groups", CONV)
def test_conv2d_kernels(dtype, xs, ws, stride, pads, dil, groups):
    x, w = RNG.standard_normal(xs).astype(dtype), RNG.standard_normal(ws).astype(dtype)
    b = RNG.standard_normal(ws[0]).astype(dtype)
    cpu, ref = both("conv2d_forward")
    y = ref(x, w, b, stride, pads, dil, groups)
    close(cpu(x, w, b, stride, pads, dil, groups), y, dtype)
    close(cpu(x, w, None, stride, pads, dil, groups), ref(x, w, None, stride, pads, dil, groups), dtype)
    dy = RNG.standard_normal(y.shape).astype(dtype)
    cpu, ref = both("conv2d_backward")
    close(cpu(x, w, dy, stride, pads, dil, groups), ref(x, w, dy, stride, pads, dil, groups), dtype)
    close(cpu(x, w, dy, stride, pads, dil, groups, (True, False, False)),
          ref(x, w, dy, stride, pads, dil, groups, (True, False, False)), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k,s,p,d,ceil", [((3, 3), (2, 2), (1, 1), (1, 1), False),
                                           ((2, 3), (1, 2), (0, 1), (2, 1), True),
                                           ((3, 3), (3, 3), (0, 0), (1, 1), True)])
def test_pool_kernels(dtype, k, s, p, d, ceil):
    x = RNG.standard_normal((2, 3, 10, 9)).astype(dtype)
    cpu, ref = both("max_pool2d_forward")
    y, idx = ref(x, k, s, p, d, ceil)
    close(cpu(x, k, s, p, d, ceil), (y, idx), dtype)
    dy = RNG.standard_normal(y.shape).astype(dtype)
    cpu, ref = both("max_pool2d_backward")
    close(cpu(dy, idx, x.shape), ref(dy, idx, x.shape), dtype)
    for inc, div in ((True, None), (False, None), (True, 5)):
        cpu, ref = both("avg_pool2d_forward")
        y = ref(x, k, s, p, ceil, inc, div)
        close(cpu(x, k, s, p, ceil, inc, div), y, dtype)
        cpu, ref = both("avg_pool2d_backward")
        g = RNG.standard_normal(y.shape).astype(dtype)
        close(cpu(g, x.shape, k, s, p, ceil, inc, div), ref(g, x.shape, k, s, p, ceil, inc, div), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("out,mode,ac,scales", [((11, 7), "nearest", False, (None, None)),
                                                ((6, 8), "nearest", False, (2.0, 2.0)),
                                                ((9, 5), "nearest-exact", False, (None, None)),
                                                ((10, 8), "bilinear", False, (2.0, 2.0)),
                                                ((7, 3), "bilinear", True, (None, None)),
                                                ((3, 2), "bilinear", False, (None, None))])
def test_upsample_kernels(dtype, out, mode, ac, scales):
    x = RNG.standard_normal((2, 3, 5, 4)).astype(dtype)
    cpu, ref = both("upsample2d_forward")
    y = ref(x, out, mode, ac, scales)
    close(cpu(x, out, mode, ac, scales), y, dtype)
    dy = RNG.standard_normal(y.shape).astype(dtype)
    cpu, ref = both("upsample2d_backward")
    close(cpu(dy, x.shape, mode, ac, scales), ref(dy, x.shape, mode, ac, scales), dtype)


def scan_inputs(bt, d, n, length, bc, groups, dtype, opts):
    bc_shape = {"fixed": (d, n), "group": (bt, groups, n, length)}[bc]
    a = {"u": RNG.standard_normal((bt, d, length)), "delta": RNG.random((bt, d, length)) * 2 - 1,
             "A": -RNG.random((d, n)) * 2, "B": RNG.standard_normal(bc_shape), "C": RNG.standard_normal(bc_shape),
             "D": RNG.standard_normal(d), "z": RNG.standard_normal((bt, d, length)), "delta_bias": RNG.random(d) * 0.2}
    return [None if k in ("D", "z", "delta_bias") and k not in opts else a[k].astype(dtype)
            for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bt,d,n,length,bc,groups,opts,softplus", [
    (2, 5, 3, 9, "group", 1, ("D", "z", "delta_bias"), True),
    (1, 6, 16, 33, "group", 3, ("z",), False),
    (3, 4, 7, 1, "fixed", 1, ("D", "delta_bias"), True),
    (2, 17, 5, 40, "group", 1, (), True),
    (2, 3, 8, 12, "fixed", 1, ("D", "z"), True),  # N = 8 and 16 take the unrolled paths
])
def test_scan_kernels(dtype, bt, d, n, length, bc, groups, opts, softplus):
    args = scan_inputs(bt, d, n, length, bc, groups, dtype, opts)
    cpu, ref = both("selective_scan_forward")
    out, last = ref(*args, softplus)
    close(cpu(*args, softplus), (out, last), dtype)
    dout = RNG.standard_normal(out.shape).astype(dtype)
    dlast = RNG.standard_normal(last.shape).astype(dtype)
    cpu, ref = both("selective_scan_backward")
    for dl in (None, dlast):
        close(cpu(*args, softplus, dout, dl), ref(*args, softplus, dout, dl), dtype)


def test_scan_softplus_extremes():
    """The vectorised float32 softplus keeps relative accuracy for very negative and large inputs."""
    args = scan_inputs(1, 3, 4, 8, "group", 1, "float32", ("delta_bias",))
    args[1] = np.linspace(-30, 30, 24, dtype=np.float32).reshape(1, 3, 8)
    cpu, ref = both("selective_scan_forward")
    close(cpu(*args, True), ref(*args, True), "float32")


def test_bindings_check_arguments():
    f = np.float32
    u = np.zeros((2, 3, 5), f)
    A, B = np.zeros((3, 4), f), np.zeros((2, 1, 5, 4), f)
    with pytest.raises(ValueError, match=r"delta has shape \(2, 3, 4\)"):
        _C.selective_scan_forward(u, np.zeros((2, 3, 4), f), A, B, B, None, None, None, False)
    with pytest.raises(ValueError, match=r"B has shape \(2, 2, 5, 4\)"):
        _C.selective_scan_forward(u, u, A, np.zeros((2, 2, 5, 4), f), B, None, None, None, False)
    with pytest.raises(ValueError, match=r"D has shape \(4,\), expected \(3,\)"):
        _C.selective_scan_forward(u, u, A, B, B, np.zeros(4, f), None, None, False)
    with pytest.raises(TypeError, match="expected dtype float32, got float64"):
        _C.selective_scan_forward(u, u.astype(np.float64), A, B, B, None, None, None, False)
    with pytest.raises(ValueError, match="dlast_state has shape"):
        _C.selective_scan_backward(u, u, A, B, B, None, None, None, False, u, np.zeros((2, 3), f))
    x, w = np.zeros((1, 2, 5, 5), f), np.zeros((4, 1, 3, 3), f)
    with pytest.raises(ValueError, match=r"weight \(4, 1, 3, 3\) with groups=1 does not fit input \(1, 2, 5, 5\)"):
        _C.conv2d_forward(x, w, None, 1, 1, 1, 1, 1, 1, 1, 5, 5)
    with pytest.raises(ValueError, match=r"bias has shape \(3,\), expected \(4,\)"):
        _C.conv2d_forward(x, w, np.zeros(3, f), 1, 1, 1, 1, 1, 1, 2, 5, 5)
    with pytest.raises(ValueError, match=r"grad_output has shape \(1, 3, 5, 5\)"):
        _C.conv2d_backward(x, w, np.zeros((1, 3, 5, 5), f), 1, 1, 1, 1, 1, 1, 2, True, True)
    with pytest.raises(ValueError, match=r"tap h0\[0\] = 7 is outside \[0, 5\)"):
        z = np.zeros(2, np.int64)
        _C.upsample2d_forward(x, 2, 2, np.array([7, 0]), z, z, z, np.zeros(2, f), np.zeros(2, f))
    # an index outside the plane is refused before anything is written; -1 (a window of padding only) adds nothing
    with pytest.raises(ValueError, match=r"index 99 at flat position 1 is outside \[-1, 4\)"):
        _C.max_pool2d_backward(np.ones((1, 1, 1, 2), f), np.array([[[[3, 99]]]]), 2, 2)
    dx = _C.max_pool2d_backward(np.ones((1, 1, 1, 2), f), np.array([[[[3, -1]]]]), 2, 2)
    assert dx.sum() == 1.0 and dx.reshape(-1)[3] == 1.0



def test_conv2d_blocks_and_tiles():
    """Output columns spanning several 128-column blocks, out/in channel counts off the 6-row and
    16-column register tiles, a batch of one, and float64."""
    for dtype, xs, ws, groups in (("float32", (1, 7, 23, 19), (13, 7, 3, 3), 1),
                                  ("float64", (3, 10, 17, 15), (10, 5, 2, 3), 2)):
        x, w = RNG.standard_normal(xs).astype(dtype), RNG.standard_normal(ws).astype(dtype)
        args = ((1, 1), (1, 0, 2, 1), (1, 1), groups)
        cpu, ref = both("conv2d_forward")
        y = ref(x, w, None, *args)
        close(cpu(x, w, None, *args), y, dtype)
        dy = RNG.standard_normal(y.shape).astype(dtype)
        cpu, ref = both("conv2d_backward")
        close(cpu(x, w, dy, *args), ref(x, w, dy, *args), dtype)
