"""C++ elementwise, norm and loss kernels (csrc/activation.cpp, norm.cpp, loss.cpp) against the
numpy reference: forward and backward, float32 and float64, odd sizes, one row, sizes that are
not a multiple of any vector width, and sizes large enough to take the multi-threaded path.
Every C++ function is called both directly (so the native code is what is tested) and through
the cpu adapter (contiguity, dtype fallback)."""
import numpy as np
import pytest
from cpu_kernel_utils import _C, DTYPES, close, impls, needs_C, rand

from tinyml import backends

pytestmark = needs_C

SHAPES = [(1, 1), (1, 7), (3, 33), (17, 129), (40, 1001)]  # the last one runs on every thread


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (5, 3), (1027,), (7, 9, 611)])
def test_activations(dtype, shape):
    rng = np.random.default_rng(0)
    x, b, dy = rand(rng, shape, dtype, 4.0), rand(rng, shape, dtype), rand(rng, shape, dtype)
    x.flat[0] = -30.0  # far tails: sigmoid / erfc underflow must give 0, not NaN
    if x.size > 1:
        x.flat[1] = 30.0
    for approx in ("none", "tanh"):
        ref = impls("gelu_forward")[1](x, approx)
        close(_C.gelu_forward(x, approx), ref, dtype, f"gelu {approx}")
        close(impls("gelu_forward")[0](x, approx), ref, dtype, f"gelu {approx} adapter")
        close(_C.gelu_backward(x, dy, approx), impls("gelu_backward")[1](x, dy, approx), dtype, f"gelu' "
                                                                                                f"{approx}")
    close(_C.silu_forward(x), impls("silu_forward")[1](x), dtype, "silu")
    close(_C.silu_backward(x, dy), impls("silu_backward")[1](x, dy), dtype, "silu'")
    close(_C.swiglu_forward(x, b), impls("swiglu_forward")[1](x, b), dtype, "swiglu")
    close(_C.swiglu_backward(x, b, dy), impls("swiglu_backward")[1](x, b, dy), dtype, "swiglu'")
    close(_C.softplus_forward(x, 2.0, 5.0), impls("softplus_forward")[1](x, 2.0, 5.0), dtype, "softplus")
    close(_C.softplus_backward(x, dy, 2.0, 5.0), impls("softplus_backward")[1](x, dy, 2.0, 5.0), dtype,
          "softplus'")


def test_activation_adapter_noncontiguous_and_fallback():
    rng = np.random.default_rng(1)
    x = rand(rng, (33, 20), np.float32).T  # transposed view
    dy = rand(rng, (20, 33), np.float32)
    cpu, ref = impls("silu_backward")
    close(cpu(x, dy), ref(np.ascontiguousarray(x), dy), np.float32, "noncontiguous")
    h = x.astype(np.float16)  # no float16 in C++: the adapter declines, and dispatch runs the reference
    assert impls("silu_forward")[0](h) is NotImplemented
    np.testing.assert_array_equal(backends.dispatch("silu_forward")(h), impls("silu_forward")[1](h))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm(dtype, shape, affine):
    rng = np.random.default_rng(2)
    x, dy = rand(rng, shape, dtype, 3.0) + dtype(1.5), rand(rng, shape, dtype)
    w = rand(rng, shape[-1:], dtype) if affine != "none" else None
    b = rand(rng, shape[-1:], dtype) if affine == "both" else None
    fwd_ref = impls("layer_norm_forward")[1](x, w, b, 1e-5)
    close(_C.layer_norm_forward(x, w, b, 1e-5), fwd_ref, dtype, "layer_norm")
    close(impls("layer_norm_forward")[0](x, w, b, 1e-5), fwd_ref, dtype, "layer_norm adapter")
    _, mean, rstd = fwd_ref
    bwd_ref = impls("layer_norm_backward")[1](dy, x, w, mean, rstd)
    close(_C.layer_norm_backward(dy, x, w, mean, rstd), bwd_ref, dtype, "layer_norm backward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_rms_norm(dtype, shape, affine):
    rng = np.random.default_rng(3)
    x, dy = rand(rng, shape, dtype, 2.0), rand(rng, shape, dtype)
    w = rand(rng, shape[-1:], dtype) if affine else None
    fwd_ref = impls("rms_norm_forward")[1](x, w, 1e-6)
    close(_C.rms_norm_forward(x, w, 1e-6), fwd_ref, dtype, "rms_norm")
    bwd_ref = impls("rms_norm_backward")[1](dy, x, w, fwd_ref[1])
    close(_C.rms_norm_backward(dy, x, w, fwd_ref[1]), bwd_ref, dtype, "rms_norm backward")
    close(impls("rms_norm_backward")[0](dy.T.copy().T, x, w, fwd_ref[1]), bwd_ref, dtype, "rms_norm adapter")


def test_norm_weight_grad_is_deterministic_across_threads():
    # dweight sums over rows through per-thread partial buffers: the result must match the
    # reference for any thread count (1 thread = the serial order)
    import tinyml

    rng = np.random.default_rng(4)
    x, dy = rand(rng, (301, 257), np.float32), rand(rng, (301, 257), np.float32)
    w = rand(rng, (257,), np.float32)
    _, mean, rstd = _C.layer_norm_forward(x, w, None, 1e-5)
    before = tinyml.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            tinyml.set_num_threads(n)
            outs.append(_C.layer_norm_backward(dy, x, w, mean, rstd))
    finally:
        tinyml.set_num_threads(before)
    ref = impls("layer_norm_backward")[1](dy, x, w, mean, rstd)
    for out in outs:
        close(out, ref, np.float32, "layer_norm backward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c", [(1, 1), (1, 5), (7, 33), (13, 1031), (9, 5000)])
@pytest.mark.parametrize("ls", [0.0, 0.1])
def test_cross_entropy(dtype, n, c, ls):
    rng = np.random.default_rng(5)
    x = rand(rng, (n, c), dtype, 3.0)
    t = rng.integers(0, c, n)
    if n > 2:
        t[1] = -100  # an ignored row
        x[2, :] = -np.inf  # a row the max can not be taken from... except the target
        x[2, t[2]] = 0.0
    cpu, ref = impls("cross_entropy_forward")
    fwd_ref = ref(x, t, -100, ls)  # (loss, row max, row log-sum); label smoothing makes row 2's loss inf
    close(_C.cross_entropy_forward(x, t, -100, ls), fwd_ref, dtype, "cross_entropy")
    close(cpu(x, t.astype(np.int32), -100, ls), fwd_ref, dtype, "adapter int32 targets")
    dloss = rand(rng, (n,), dtype)
    bref = impls("cross_entropy_backward")[1](x, t, *fwd_ref[1:], dloss, -100, ls)
    close(_C.cross_entropy_backward(x, t, *fwd_ref[1:], dloss, -100, ls), bref, dtype, "cross_entropy "
                                                                                       "backward")


def test_cross_entropy_adapter_scalar_dloss():
    rng = np.random.default_rng(6)
    x, t = rand(rng, (4, 10), np.float32), rng.integers(0, 10, 4)
    stats = _C.cross_entropy_forward(x, t, -100, 0.0)[1:]
    g = np.float32(0.25)
    expected = impls("cross_entropy_backward")[1](x, t, *stats, np.full(4, g), -100, 0.0)
    got = impls("cross_entropy_backward")[0](x, t, *stats, np.asarray(g), -100, 0.0)
    close(got, expected, np.float32, "")


@pytest.mark.parametrize("n", [1, 7, 16, 17, 37, 600])
def test_float32_exp_keeps_nan_in_every_lane(n):
    # the vectorised float32 exp used to clamp its argument first, turning NaN into exp(88.4): every
    # position of rows longer and shorter than a vector (and than a cross-entropy chunk of 512)
    # must now give a NaN row, in softmax, log_softmax, cross_entropy and its gradient
    rng = np.random.default_rng(8)
    x = np.repeat(rand(rng, (1, n), np.float32), n, axis=0)
    x[np.arange(n), np.arange(n)] = np.nan
    for fn in (_C.softmax_forward, _C.log_softmax_forward):
        assert np.isnan(fn(x)).all()
    t = np.zeros(n, np.int64)
    loss, row_max, log_sum = _C.cross_entropy_forward(x, t, -100, 0.1)
    assert np.isnan(loss).all() and np.isnan(log_sum).all()
    dx = _C.cross_entropy_backward(x, t, row_max, log_sum, np.ones(n, np.float32), -100, 0.1)
    assert np.isnan(dx).all()
    # while -inf, and entries far below the max, still get a probability of exactly 0
    big = np.array([[0.0, -np.inf, 1e30, -1e30, 88.0, -87.0]], np.float32)
    expected = impls("softmax_forward")[1](big.astype(np.float64), -1)
    close(_C.softmax_forward(big), expected.astype(np.float32), np.float32, "softmax of extremes")


# ---- validation: clean Python exceptions, never a crash -----------------------------------------

def test_validation_errors():
    f32 = np.ones((4, 8), np.float32)
    with pytest.raises(TypeError, match="int32"):
        _C.gelu_forward(f32.astype(np.int32), "none")
    with pytest.raises(ValueError, match="approximate"):
        _C.gelu_forward(f32, "fast")
    with pytest.raises(ValueError, match=r"\(4, 8\).*\(4, 7\)"):
        _C.silu_backward(f32, np.ones((4, 7), np.float32))
    with pytest.raises(TypeError, match="float64"):
        _C.swiglu_forward(f32, f32.astype(np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.silu_forward(np.ones((8, 4), np.float32).T)
    with pytest.raises(ValueError, match=r"weight has shape \(7,\).*\(4, 8\)"):
        _C.layer_norm_forward(f32, np.ones(7, np.float32), None, 1e-5)
    with pytest.raises(TypeError, match="float64"):
        _C.layer_norm_forward(f32, np.ones(8, np.float64), None, 1e-5)
    with pytest.raises(ValueError, match=r"rstd has shape \(3,\)"):
        _C.rms_norm_backward(f32, f32, None, np.ones(3, np.float32))
    with pytest.raises(IndexError, match="Target 8 is out of bounds"):
        _C.cross_entropy_forward(f32, np.array([0, 1, 8, 2]), -100, 0.0)
    with pytest.raises(IndexError, match="Target -1 is out of bounds"):
        _C.cross_entropy_backward(f32, np.array([0, 1, -1, 2]), np.zeros(4, np.float32),
                                  np.zeros(4, np.float32), np.ones(4, np.float32), -100, 0.0)
    with pytest.raises(ValueError, match=r"log_sum \(3,\).*\(4, 8\)"):
        _C.cross_entropy_backward(f32, np.array([0, 1, 1, 2]), np.zeros(4, np.float32),
                                  np.zeros(3, np.float32), np.ones(4, np.float32), -100, 0.0)
    with pytest.raises(ValueError, match=r"target has shape \(3,\)"):
        _C.cross_entropy_forward(f32, np.array([0, 1, 2]), -100, 0.0)
    with pytest.raises(TypeError, match="int64"):
        _C.cross_entropy_forward(f32, np.array([0, 1, 2, 3], np.int32), -100, 0.0)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        _C.cross_entropy_forward(np.ones(4, np.float32), np.array([0]), -100, 0.0)


def test_set_num_threads_roundtrip_and_errors():
    import tinyml

    before = tinyml.get_num_threads()
    try:
        tinyml.set_num_threads(1)
        assert tinyml.get_num_threads() == 1
        try:
            from threadpoolctl import threadpool_info
        except ImportError:
            threadpool_info = None
        if threadpool_info is not None:  # numpy's BLAS follows the same setting
            assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    finally:
        tinyml.set_num_threads(before)
    assert tinyml.get_num_threads() == before
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            tinyml.set_num_threads(bad)


def test_cross_entropy_memory_is_one_logits_sized_output():
    # the fused backward writes dlogits directly: numpy-side peak allocation (tracemalloc sees
    # numpy's buffers) is the dlogits array itself, no softmax or one-hot temporaries
    import tracemalloc

    rng = np.random.default_rng(7)
    x, t = rand(rng, (64, 4099), np.float32), rng.integers(0, 4099, 64)
    cpu_f, cpu_b = impls("cross_entropy_forward")[0], impls("cross_entropy_backward")[0]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        _, row_max, log_sum = cpu_f(x, t, -100, 0.1)
        assert tracemalloc.get_traced_memory()[1] < 0.05 * x.nbytes
        dloss = np.ones(64, np.float32)
        tracemalloc.reset_peak()
        d = cpu_b(x, t, row_max, log_sum, dloss, -100, 0.1)
        assert tracemalloc.get_traced_memory()[1] <= 1.05 * x.nbytes
    finally:
        tracemalloc.stop()
    assert d.shape == x.shape
