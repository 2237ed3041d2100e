"""The C++ conv / pool / upsample kernels (csrc/conv.cpp, csrc/pool.cpp) against their numpy references,
kernel by kernel, and the bindings' argument checks (the selective scan's: tests/ops/test_scan.py)."""
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


def test_bindings_check_arguments():
    f = np.float32
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
