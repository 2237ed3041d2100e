"""Fault tests of the C++-backed activations, conv2d, pooling and upsampling (csrc/activation.cpp,
csrc/conv.cpp, csrc/pool.cpp) with hypothesis: shapes with sizes 0 and 1 and sizes that are not a
multiple of any SIMD width or GEMM block, contiguous / transposed / stride-2 inputs, float32, float64,
float16 and bfloat16 (the last two on the numpy reference through the cpu adapters), and NaN, +inf and
-inf at random positions. Forward and backward run on the numpy reference and on the C++ kernels and
are compared with PyTorch (float64 on the same rounded values) and with each other; where PyTorch
refuses the arguments, tinyml must refuse them too, with an error that names them.

Where PyTorch's float32 CPU kernels disagree with its own float64 ones, tinyml follows float64 (the
exact function): gelu(+inf) = +inf (PyTorch's vectorised float32 erf makes it NaN).
"""
import math

import numpy as np
import pytest
import torch.nn.functional as TF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from native_faults_helpers import DTYPES, LAYOUTS, SPOTS, check, inject

import tinyml
import tinyml.nn.functional as F
from tinyml.backends.reference.pool import pool_out_size

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
SIZES = st.sampled_from([0, 1, 2, 3, 5, 7, 16, 17, 33])
SPATIAL = st.sampled_from([1, 2, 3, 4, 5, 7, 9, 13, 17])
DTYPE = st.sampled_from(DTYPES)
LAYOUT = st.sampled_from(LAYOUTS)
SEED = st.integers(0, 2**16)
# large finite values too: where exp over/underflows in float32 (|x| > 88) and gelu's x^3 grows
BIG = st.sampled_from([math.nan, math.inf, -math.inf, 100.0, -100.0, 88.5, -88.5, 30.0, -30.0])
BIG_SPOTS = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), BIG), max_size=4)


def PAIR(lo, hi):
    """Two integers in [lo, hi]: a (height, width) kernel, stride, padding or dilation."""
    return st.tuples(st.integers(lo, hi), st.integers(lo, hi))


def _normal(seed, shape, scale=2.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


ACTIVATIONS = {
    "gelu": (lambda x: F.gelu(x), lambda x: TF.gelu(x)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    "silu": (F.silu, TF.silu),
}


@SETTINGS
@given(shape=st.lists(SIZES, max_size=3), name=st.sampled_from(sorted(ACTIVATIONS) + ["softplus"]),
       beta=st.sampled_from([1.0, 2.0, 0.5, -1.0]), threshold=st.sampled_from([20.0, 1.0, -2.0]),
       dtype=DTYPE, layout=LAYOUT, spots=BIG_SPOTS, seed=SEED)
def test_activations(shape, name, beta, threshold, dtype, layout, spots, seed):
    x = inject(_normal(seed, shape, 3.0), spots)
    if name == "softplus":
        fns = (lambda x: F.softplus(x, beta, threshold), lambda x: TF.softplus(x, beta, threshold))
    else:
        fns = ACTIVATIONS[name]
    check(*fns, [x], dtype=dtype, layouts=[layout], seed=seed)


@SETTINGS
@given(shape=st.lists(SIZES, min_size=1, max_size=3), broadcast=st.booleans(), dtype=DTYPE,
       layouts=st.tuples(LAYOUT, LAYOUT), spots=st.tuples(BIG_SPOTS, SPOTS), seed=SEED)
def test_swiglu(shape, broadcast, dtype, layouts, spots, seed):
    a = inject(_normal(seed, shape, 3.0), spots[0])
    b = inject(_normal(seed + 1, shape[-1:] if broadcast else shape), spots[1])
    # the oracle in the input's precision: silu(-100) * inf is -inf in float64 but 0 * inf = NaN in float32
    check(F.swiglu, lambda a, b: TF.silu(a) * b, [a, b], dtype=dtype, layouts=layouts, seed=seed,
          oracle_dtype="float64" if dtype == "float64" else "float32")


SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-30, 13.0, -13.0, 30.0, -30.0, 88.5, -88.5, 100.0,
           -100.0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS) + ["softplus", "swiglu"])
def test_activation_special_values(name, dtype):
    """Every special value (NaN, +-inf, signed zeros, where exp overflows or underflows) on its own and
    next to normal values, in an array longer than one SIMD vector."""
    x = np.concatenate([SPECIAL, np.linspace(-4, 4, 19)])
    if name == "swiglu":  # each special value as the gate a and as the multiplier b
        b = np.concatenate([np.linspace(-3, 3, len(SPECIAL)), SPECIAL + [1.0] * (19 - len(SPECIAL))])
        check(F.swiglu, lambda a, b: TF.silu(a) * b, [x, b], dtype=dtype,
              oracle_dtype="float64" if dtype == "float64" else "float32")
        check(F.swiglu, lambda a, b: TF.silu(a) * b, [b, x], dtype=dtype,
              oracle_dtype="float64" if dtype == "float64" else "float32")
        return
    fns = ACTIVATIONS.get(name, (lambda x: F.softplus(x, 1.0, 20.0), lambda x: TF.softplus(x, 1.0, 20.0)))
    check(*fns, [x], dtype=dtype)


def test_activations_across_parallel_chunks():
    """Above 2^15 elements the kernels split the array over threads: NaN/inf at chunk edges."""
    n = (1 << 15) + 37
    x = _normal(0, (n,), 3.0)
    x[[0, 15, 16, n // 2 - 1, n // 2, n // 2 + 1, n - 2, n - 1]] = [math.nan, math.inf, -math.inf, math.nan,
                                                                     -math.inf, math.inf, -math.inf, math.nan]
    for name, fns in ACTIVATIONS.items():
        check(*fns, [x], dtype="float32", seed=1)
    check(F.swiglu, lambda a, b: TF.silu(a) * b, [x, x[::-1].copy()], dtype="float32")
    check(lambda x: F.softplus(x, 2.0, 5.0), lambda x: TF.softplus(x, 2.0, 5.0), [x], dtype="float64")


# ---- conv2d ----------------------------------------------------------------------------------------

@SETTINGS
@given(n=st.sampled_from([0, 1, 2]), cg=st.sampled_from([1, 2, 3]), og=st.sampled_from([1, 3, 9]),
       groups=st.sampled_from([1, 2]), hw=st.tuples(SPATIAL, SPATIAL), k=PAIR(1, 3), stride=PAIR(1, 3),
       padding=st.one_of(st.tuples(st.integers(0, 2), st.integers(0, 2)), st.sampled_from(["same", "valid"])),
       dilation=PAIR(1, 2), bias=st.booleans(), dtype=st.sampled_from(["float32", "float64", "float32",
                                                                       "float16", "bfloat16"]),
       layouts=st.tuples(LAYOUT, LAYOUT, LAYOUT), spots=st.tuples(SPOTS, SPOTS, SPOTS), seed=SEED)
def test_conv2d(n, cg, og, groups, hw, k, stride, padding, dilation, bias, dtype, layouts, spots, seed):
    x = inject(_normal(seed, (n, cg * groups) + hw, 1.0), spots[0])
    w = inject(_normal(seed + 1, (og * groups, cg) + k, 1.0), spots[1])
    arrays = [x, w] + ([inject(_normal(seed + 2, (og * groups,), 1.0), spots[2])] if bias else [])

    def fn(mod):
        return lambda x, w, *b: mod.conv2d(x, w, b[0] if b else None, stride, padding, dilation, groups)

    check(fn(F), fn(TF), arrays, dtype=dtype, layouts=layouts, seed=seed)


@SETTINGS
@given(n=st.sampled_from([0, 1, 2]), c=st.sampled_from([1, 2, 3]), length=SPATIAL, k=st.integers(1, 4),
       stride=st.integers(1, 3), padding=st.integers(0, 2), dilation=st.integers(1, 2), dtype=st.sampled_from(
           ["float32", "float64"]), layout=LAYOUT, spots=st.tuples(SPOTS, SPOTS), seed=SEED)
def test_conv1d(n, c, length, k, stride, padding, dilation, dtype, layout, spots, seed):
    x = inject(_normal(seed, (n, c, length), 1.0), spots[0])
    w = inject(_normal(seed + 1, (3, c, k), 1.0), spots[1])
    check(lambda x, w: F.conv1d(x, w, None, stride, padding, dilation),
          lambda x, w: TF.conv1d(x, w, None, stride, padding, dilation), [x, w], dtype=dtype,
          layouts=[layout, "contiguous"], seed=seed)


# ---- pooling and upsampling ------------------------------------------------------------------------

POOL_DTYPES = st.sampled_from(["float32", "float64", "float32", "float16", "bfloat16"])


def _empty_window(size, k, s, p, d, ceil_mode):
    """Whether some window of a max_pool2d axis holds padding only (possible with dilation > 1)."""
    out = pool_out_size(size, k, s, p, d, ceil_mode)
    taps = np.arange(max(out, 0))[:, None] * s - p + np.arange(k)[None, :] * d
    return bool(out > 0 and (~((taps >= 0) & (taps < size)).any(axis=1)).any())


def test_max_pool2d_window_of_padding_only():
    """Dilation can make a window hold padding only: its max is -inf (as in PyTorch's forward), its index
    -1 and its gradient 0 on every backend. (PyTorch returns an index past the input there and its
    backward writes through it: 'double free or corruption', so it is not called.)"""
    x = np.arange(9.0).reshape(1, 1, 1, 9)
    args = ((2, 4), 3, (1, 2), (2, 1))
    assert _empty_window(1, 2, 3, 1, 2, False)
    for backend in ("reference", "cpu"):
        with tinyml.backends.force_reference(backend == "reference"):
            t = tinyml.tensor(x, dtype="float32", requires_grad=True)
            y, idx = F.max_pool2d(t, *args, return_indices=True)
            assert idx.numpy().tolist() == [[[[-1] * 4]]], backend
            y.sum().backward()
            assert y.detach().numpy().tolist() == [[[[-math.inf] * 4]]], backend
            assert t.grad.numpy().tolist() == np.zeros_like(x).tolist(), backend


@SETTINGS
@given(n=st.sampled_from([0, 1, 2]), c=st.sampled_from([1, 2, 3]), hw=st.tuples(SPATIAL, SPATIAL),
       k=PAIR(1, 4), stride=st.sampled_from([None, 1, 2, 3, (1, 2)]), padding=PAIR(0, 2), dilation=PAIR(1, 2),
       ceil_mode=st.booleans(), dtype=POOL_DTYPES, layout=LAYOUT, spots=BIG_SPOTS, dead=st.booleans(),
       seed=SEED)
def test_max_pool2d(n, c, hw, k, stride, padding, dilation, ceil_mode, dtype, layout, spots, dead, seed):
    s = k if stride is None else (stride, stride) if isinstance(stride, int) else stride
    if any(_empty_window(*a, ceil_mode) for a in zip(hw, k, s, padding, dilation)):
        return  # PyTorch corrupts its heap there (test_max_pool2d_window_of_padding_only)
    if any(k_ < 2 * p <= d * (k_ - 1) + 1 for k_, p, d in zip(k, padding, dilation)):
        return  # PyTorch refuses pad > kernel / 2; ops/pool.py not yet (test_native_faults_errors.py)
    x = inject(_normal(seed, (n, c) + hw), spots)
    if dead and x.size:
        x[..., : k[0], :] = -math.inf  # whole windows of -inf: the max is -inf, its index the first one
    args = (k, stride, padding, dilation, ceil_mode)
    check(lambda x: F.max_pool2d(x, *args), lambda x: TF.max_pool2d(x, *args), [x], dtype=dtype,
          layouts=[layout], seed=seed)
    # the indices (an output without gradient): exactly torch's, NaN ties and -inf windows included
    check(lambda x: F.max_pool2d(x, *args, return_indices=True)[1],
          lambda x: TF.max_pool2d(x, *args, return_indices=True)[1], [x], dtype=dtype, layouts=[layout],
          grad=False, oracle_dtype="float32" if dtype in ("float16", "bfloat16") else dtype)


@SETTINGS
@given(n=st.sampled_from([0, 1, 2]), c=st.sampled_from([1, 2, 3]), hw=st.tuples(SPATIAL, SPATIAL),
       k=PAIR(1, 4), stride=st.sampled_from([None, 1, 2, 3, (2, 1)]), padding=PAIR(0, 2),
       ceil_mode=st.booleans(), include_pad=st.booleans(), divisor=st.sampled_from([None, None, 1, 3]),
       dtype=POOL_DTYPES, layout=LAYOUT, spots=SPOTS, seed=SEED)
def test_avg_pool2d(n, c, hw, k, stride, padding, ceil_mode, include_pad, divisor, dtype, layout, spots,
                    seed):
    x = inject(_normal(seed, (n, c) + hw), spots)
    args = (k, stride, padding, ceil_mode, include_pad, divisor)
    check(lambda x: F.avg_pool2d(x, *args), lambda x: TF.avg_pool2d(x, *args), [x], dtype=dtype,
          layouts=[layout], seed=seed)


@SETTINGS
@given(n=st.sampled_from([0, 1, 2]), c=st.sampled_from([1, 2, 3]), hw=st.tuples(SPATIAL, SPATIAL),
       out=st.tuples(SPATIAL, SPATIAL), dtype=POOL_DTYPES, layout=LAYOUT, spots=SPOTS, seed=SEED)
def test_adaptive_avg_pool2d(n, c, hw, out, dtype, layout, spots, seed):
    x = inject(_normal(seed, (n, c) + hw), spots)
    check(lambda x: F.adaptive_avg_pool2d(x, out), lambda x: TF.adaptive_avg_pool2d(x, out), [x], dtype=dtype,
          layouts=[layout], seed=seed)


@SETTINGS
@given(n=st.sampled_from([0, 1, 2]), c=st.sampled_from([1, 2, 3]), hw=st.tuples(SPATIAL, SPATIAL),
       mode=st.sampled_from(["nearest", "nearest-exact", "bilinear", "bilinear-corners"]),
       size=st.one_of(st.tuples(SPATIAL, SPATIAL), st.sampled_from([0.5, 1.5, 2.0, 3.0, 0.75, 1.1, 1.3])),
       dtype=POOL_DTYPES, layout=LAYOUT, spots=SPOTS, seed=SEED)
def test_interpolate(n, c, hw, mode, size, dtype, layout, spots, seed):
    kw = {"size": size} if isinstance(size, tuple) else {"scale_factor": size}
    x = inject(_normal(seed, (n, c) + hw), spots)
    if mode.startswith("bilinear"):
        kw.update(mode="bilinear", align_corners=mode.endswith("corners"))
    else:
        kw.update(mode=mode)
    # (float64 oracle: PyTorch's float32 bilinear kernel puts NaN where its float64 one and its own
    # formula put inf, or the reverse, around an inf pixel in 172 of 2400 small cases; nearest indices
    # are computed in float32 for every dtype, by PyTorch and by tinyml)
    check(lambda x: F.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw), [x], dtype=dtype,
          layouts=[layout], seed=seed)


@pytest.mark.parametrize("hw, size", [((1, 1), (1, 1)), ((1, 1), (3, 2)), ((3, 4), (3, 4))])
def test_bilinear_taps_that_look_nearest(hw, size):
    """Bilinear keeps its zero-weight taps: an inf pixel gives inf * 1 + inf * 0 = NaN, as in PyTorch
    (whose identity-size resize takes the same pixel twice, weights 1 and 0)."""
    kw = dict(size=size, mode="bilinear", align_corners=True)
    x = np.arange(float(hw[0] * hw[1])).reshape(1, 1, *hw)
    x[0, 0, 0, 0] = math.inf
    check(lambda x: F.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw), [x], dtype="float32")


def test_pooling_and_upsampling_across_threads():
    """Inputs big enough for the kernels' OpenMP loops over planes, NaN/inf in several planes."""
    x = _normal(3, (2, 8, 33, 31))
    x[0, 0, 0, 0], x[1, 7, 32, 30], x[1, 3, 16, 15] = math.nan, math.inf, -math.inf
    x[0, 5, :3, :3] = -math.inf  # a whole window
    pools = [(F.max_pool2d, TF.max_pool2d, (3, 2, 1)), (F.avg_pool2d, TF.avg_pool2d, (3, 2, 1, True))]
    for ours, theirs, args in pools:
        check(lambda x: ours(x, *args), lambda x: theirs(x, *args), [x], layouts=["transposed"])
    for mode in ("nearest", "bilinear"):
        check(lambda x: F.interpolate(x, scale_factor=2.0, mode=mode),
              lambda x: TF.interpolate(x, scale_factor=2.0, mode=mode), [x], dtype="float64")


@pytest.mark.parametrize("case", ["adaptive output 0", "adaptive no channels", "max_pool empty batch",
                                  "max_pool dilated pad = k/2", "interpolate empty batch"])
def test_empty_results_pytorch_allows(case):
    """What PyTorch still accepts next to the refusals of test_native_faults_errors: an adaptive output
    size of 0 or no channels there, an empty batch, and padding up to half the kernel whatever the
    dilation. Empty results; zero gradients (PyTorch's adaptive backward refuses an empty dy, so there
    the gradient is checked on its own)."""
    fns = {
        "adaptive output 0": (lambda f: lambda x: f.adaptive_avg_pool2d(x, (0, 2)), (1, 2, 5, 5)),
        "adaptive no channels": (lambda f: lambda x: f.adaptive_avg_pool2d(x, 2), (1, 0, 5, 5)),
        "max_pool empty batch": (lambda f: lambda x: f.max_pool2d(x, 2), (0, 2, 5, 5)),
        "max_pool dilated pad = k/2": (lambda f: lambda x: f.max_pool2d(x, 3, padding=1, dilation=2),
                                       (1, 2, 5, 5)),
        "interpolate empty batch": (lambda f: lambda x: f.interpolate(x, size=(3, 4), mode="bilinear"),
                                    (0, 2, 5, 5)),
    }
    make, shape = fns[case]
    adaptive = case.startswith("adaptive")
    check(make(F), make(TF), [_normal(0, shape)], grad=not adaptive)
    if adaptive:
        for backend in ("reference", "cpu"):
            with tinyml.backends.force_reference(backend == "reference"):
                x = tinyml.tensor(_normal(0, shape).astype(np.float32), requires_grad=True)
                make(F)(x).sum().backward()
            assert x.grad.shape == shape and not x.grad.numpy().any(), backend
