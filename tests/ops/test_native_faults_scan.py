"""Fault tests of the selective scan (csrc/scan.cpp) and the cpu matmul / linear path
(backends/cpu/matmul.py) with hypothesis: sizes 0 and 1 and sizes off the SIMD widths (state sizes 8
and 16 take the unrolled kernels), transposed and stride-2 inputs, float32/float64 (and float16/
bfloat16 through the reference), NaN, +inf and -inf at random positions. Forward and backward on the
numpy reference and the C++ kernels, against PyTorch (the scan: mamba's selective_scan_ref written in
torch, autograd through its loop) in float64, and against each other.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from native_faults_helpers import DTYPES, LAYOUTS, SPOTS, check, inject, refuses
from test_scan import torch_scan_ref

import tinyml
import tinyml.nn.functional as F

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
LAYOUT = st.sampled_from(LAYOUTS)
SEED = st.integers(0, 2**16)
OPTIONAL = ("D", "z", "delta_bias")


def _torch_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                return_last_state=False):
    """mamba's reference; with no time steps (its torch.stack of nothing fails) the empty output
    and a zero state."""
    if u.shape[2]:
        return torch_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    return u * 1.0, A.new_zeros((u.shape[0], u.shape[1], A.shape[1]))


def _scan_arrays(seed, bt, d, n, length, bc, groups, opts):
    rng = np.random.default_rng(seed)
    bc_shape = {"fixed": (d, n), "var": (bt, n, length), "group": (bt, groups, n, length)}[bc]
    arrays = {"u": rng.standard_normal((bt, d, length)), "delta": rng.random((bt, d, length)) * 0.5,
              "A": -rng.random((d, n)) - 0.1, "B": rng.standard_normal(bc_shape),
              "C": rng.standard_normal(bc_shape), "D": rng.standard_normal(d),
              "z": rng.standard_normal((bt, d, length)), "delta_bias": rng.random(d) * 0.2}
    return {k: v for k, v in arrays.items() if k not in OPTIONAL or k in opts}


@SETTINGS
@given(bt=st.sampled_from([0, 1, 2]), d=st.sampled_from([1, 2, 3, 4]), n=st.sampled_from([1, 3, 8, 16]),
       length=st.sampled_from([0, 1, 2, 5, 17]), bc=st.sampled_from(["fixed", "var", "group"]),
       groups=st.sampled_from([1, 2]), opts=st.sets(st.sampled_from(OPTIONAL)), softplus=st.booleans(),
       dtype=st.sampled_from(["float32", "float64", "float32", "float16", "bfloat16"]),
       layouts=st.tuples(LAYOUT, LAYOUT, LAYOUT), seed=SEED,
       spots=st.lists(st.tuples(st.integers(0, 7), SPOTS), max_size=2))
def test_selective_scan(bt, d, n, length, bc, groups, opts, softplus, dtype, layouts, spots, seed):
    groups = groups if d % groups == 0 else 1
    arrays = _scan_arrays(seed, bt, d, n, length, bc, groups, opts)
    names = list(arrays)
    for which, where in spots:  # non-finite values into any of the inputs
        name = names[which % len(names)]
        arrays[name] = inject(arrays[name], where)
    lay = {"u": layouts[0], "delta": layouts[0], "z": layouts[0], "B": layouts[1], "C": layouts[2]}

    def fn(impl):
        def run(*xs):
            kw = dict(zip(names, xs))
            return impl(**kw, delta_softplus=softplus, return_last_state=True)
        return run

    check(fn(tinyml.selective_scan), fn(_torch_scan), list(arrays.values()), dtype=dtype,
          layouts=[lay.get(k, "contiguous") for k in names], seed=seed)


def test_selective_scan_state_sizes_and_threads():
    """State sizes around the unrolled 8 and 16, and a problem big enough for the parallel path
    (batch * D * L * N > 16384), with NaN/inf in the middle of the sequence."""
    for n, bt, d, length in ((7, 1, 2, 9), (9, 1, 2, 9), (15, 2, 3, 5), (17, 2, 3, 5), (16, 4, 16, 80)):
        arrays = _scan_arrays(n, bt, d, n, length, "var", 1, OPTIONAL)
        arrays["u"][0, 0, length // 2] = math.nan
        arrays["B"][-1, 0, length // 3] = math.inf
        arrays["delta"][-1, -1, length - 1] = -math.inf

        def fn(impl):
            return lambda *xs: impl(*xs, delta_softplus=True, return_last_state=True)

        check(fn(tinyml.selective_scan), fn(torch_scan_ref), list(arrays.values()), dtype="float64", seed=n)


@pytest.mark.parametrize("label, kwargs, names", [
    ("delta shape", {"delta": (1, 2, 4)}, ["delta", "(1, 2, 4)"]),
    ("A rows", {"A": (3, 4)}, ["(2, N)", "(3, 4)"]),
    ("B shape", {"B": (1, 4, 5)}, ["B", "(1, 4, 5)"]),
    ("B groups", {"B": (1, 3, 4, 3)}, ["3 groups", "D = 2"]),
    ("D shape", {"D": (3,)}, ["D", "(3,)"]),
    ("z shape", {"z": (1, 2, 2)}, ["z", "(1, 2, 2)"]),
    ("u 2-d", {"u": (2, 3)}, ["(2, 3)"]),
    ("dtype mix", {"delta": "float64"}, ["float64", "float32"]),
    ("int u", {"u": "int64"}, ["int64"]),
])
def test_selective_scan_refuses_by_name(label, kwargs, names):
    shapes = {"u": (1, 2, 3), "delta": (1, 2, 3), "A": (2, 4), "B": (2, 4), "C": (2, 4), "D": None, "z": None}
    dtypes = {}
    for k, v in kwargs.items():
        (dtypes if isinstance(v, str) else shapes)[k] = v

    def make():
        return {k: None if s is None else tinyml.zeros(*s, dtype=dtypes.get(k, "float32"))
                for k, s in shapes.items()}

    refuses(lambda: tinyml.selective_scan(**make()), *names)


# ---- matmul and linear ----------------------------------------------------------------------------

MATMUL_DIMS = st.sampled_from([0, 1, 2, 3, 7, 16, 17, 33])


@SETTINGS
@given(batch_a=st.sampled_from([(), (1,), (2,), (3, 1)]), batch_b=st.sampled_from([(), (1,), (2,), (2, 1)]),
       m=MATMUL_DIMS, k=MATMUL_DIMS, n=MATMUL_DIMS, vec=st.sampled_from(["", "a", "b"]),
       dtype=st.sampled_from(DTYPES), layouts=st.tuples(LAYOUT, LAYOUT), spots=st.tuples(SPOTS, SPOTS),
       seed=SEED)
def test_matmul(batch_a, batch_b, m, k, n, vec, dtype, layouts, spots, seed):
    if batch_a and vec != "a" and (not batch_b or vec == "b") and 0 in (k, n):
        return  # a batch against a matrix, empty: test_empty_products_through_reshape
    rng = np.random.default_rng(seed)
    a_shape = (k,) if vec == "a" else batch_a + (m, k)
    b_shape = (k,) if vec == "b" else batch_b + (k, n)
    a = inject(rng.standard_normal(a_shape), spots[0])
    b = inject(rng.standard_normal(b_shape), spots[1])
    check(tinyml.matmul, torch.matmul, [a, b], dtype=dtype, layouts=layouts, seed=seed)


@SETTINGS
@given(lead=st.sampled_from([(), (0,), (1,), (3,), (2, 3)]), k=MATMUL_DIMS, n=MATMUL_DIMS, bias=st.booleans(),
       dtype=st.sampled_from(DTYPES), layouts=st.tuples(LAYOUT, LAYOUT), spots=st.tuples(SPOTS, SPOTS, SPOTS),
       seed=SEED)
def test_linear(lead, k, n, bias, dtype, layouts, spots, seed):
    if 0 in (k, n):
        return  # test_empty_products_through_reshape
    rng = np.random.default_rng(seed)
    arrays = [inject(rng.standard_normal(lead + (k,)), spots[0]),
              inject(rng.standard_normal((n, k)), spots[1])]
    if bias:
        arrays.append(inject(rng.standard_normal(n), spots[2]))
    check(F.linear, TF.linear, arrays, dtype=dtype, layouts=list(layouts) + ["contiguous"], seed=seed)


def test_matmul_split_over_threads():
    """Products big enough that the cpu adapter splits the output rows over threads: NaN/inf rows and
    columns land in different slices, a batch of them too."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 301, 129)), rng.standard_normal((129, 97))
    a[0, 0, 5], a[1, 150, 0], a[2, 300, 128] = math.nan, math.inf, -math.inf
    b[7, 3] = math.inf
    # (float32 sums of 903 products that cancel to ~1e-2 for db: rounding alone reaches 3e-5)
    check(tinyml.matmul, torch.matmul, [a, b], dtype="float32", layouts=["contiguous", "transposed"],
          atol=1e-4)
    check(tinyml.matmul, torch.matmul, [a[0], b], dtype="float64", layouts=["sliced", "contiguous"])


@pytest.mark.parametrize("case", ["matmul k=0", "matmul n=0", "linear in=0", "linear out=0"])
def test_empty_products_through_reshape(case):
    """A batch against a matrix with an empty inner or outer size, and linear layers with no input or
    no output features: zeros (or empty results) and zero gradients, as in PyTorch."""
    rng = np.random.default_rng(0)
    k, n = (0, 3) if case.endswith("k=0") or case.endswith("in=0") else (4, 0)
    if case.startswith("matmul"):
        check(tinyml.matmul, torch.matmul, [rng.standard_normal((2, 3, k)), rng.standard_normal((k, n))])
    else:
        check(F.linear, TF.linear, [rng.standard_normal((2, 3, k)), rng.standard_normal((n, k)),
                                    rng.standard_normal(n)])


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_matmul_kernel_with_empty_inner_size(backend):
    """The kernel itself: a (2, 3, 0) batch against a (0, 4) matrix is a (2, 3, 4) block of zeros."""
    with tinyml.backends.force_reference(backend == "reference"):
        matmul = tinyml.backends.dispatch("matmul", "cpu")
        out = matmul(np.zeros((2, 3, 0), np.float32), np.zeros((0, 4), np.float32))
    assert out.shape == (2, 3, 4) and not out.any()
