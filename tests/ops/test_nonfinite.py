"""Fault tests of the C++-backed fused ops (softmax, log_softmax, cross_entropy, layer_norm, rms_norm,
scaled_dot_product_attention) with hypothesis: random shapes (sizes 0 and 1, sizes that are not a
multiple of any SIMD width or block), transposed (non-contiguous) layouts, float32/float64/float16/
bfloat16, and NaN, +inf and -inf put at random positions. Each example runs forward and backward on
the numpy reference and on the C++ kernels (float16/bfloat16 reach the reference through the cpu
adapters) and compares both with PyTorch and with each other: values, and where NaN and inf are.

PyTorch's semantics the ops follow (and these tests hold them to): a NaN or +inf in a softmax row
makes the row NaN, a row of all -inf is NaN, a -inf entry has probability 0; cross_entropy is
log_softmax + nll (an ignored row's loss is 0 but its gradient is NaN where its log_softmax is);
layer_norm and rms_norm rows with NaN/inf are NaN (rms_norm: x * 0 where the mean square is inf);
attention follows PyTorch's math backend (a fully masked query row gives 0, a NaN score a NaN row),
with causal masking as exclusion (the fused kernels skip keys above the diagonal, so a NaN there
does not reach the output), which the oracle writes with torch.where.
"""
import math

import numpy as np
import torch
import torch.nn.functional as TF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numerics_helpers import compare_backends, inject, layout
from torch.nn.attention import SDPBackend, sdpa_kernel

import tinyml
import tinyml.nn.functional as F

SEQ = st.sampled_from([0, 1, 2, 3, 5, 8])
SETTINGS = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
SIZES = st.sampled_from([0, 1, 2, 3, 5, 7, 16, 17, 33])
DTYPES = st.sampled_from(["float32", "float64", "float16", "bfloat16"])
NONFINITE = st.sampled_from([math.nan, math.inf, -math.inf])
SPOTS = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), NONFINITE), max_size=3)


def _normal(seed, shape, scale=2.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def _spread_rows(seed, shape):
    """Normal rows plus a ramp from -3 to 3 (3 for N = 1): a row's variance and mean square stay away
    from 0, where 1/sqrt(var + eps) amplifies rounding and no tolerance separates the libraries."""
    n = shape[-1]
    return _normal(seed, shape, 1.0) + (np.linspace(-3, 3, n) if n > 1 else 3.0)


@SETTINGS
@given(rows=SIZES, n=SIZES, dtype=DTYPES, transposed=st.booleans(), spots=SPOTS, dim=st.sampled_from([-1, 0]),
       log=st.booleans(), seed=st.integers(0, 2**16))
def test_softmax_and_log_softmax(rows, n, dtype, transposed, spots, dim, log, seed):
    x = layout(inject(_normal(seed, (rows, n)), spots), transposed)
    name = "log_softmax" if log else "softmax"
    compare_backends(lambda t: getattr(F, name)(t, dim), lambda t: getattr(torch, name)(t, dim), [x],
                     dtype=dtype, seed=seed)


@SETTINGS
@given(n=SIZES, c=SIZES, spatial=st.booleans(), dtype=DTYPES, transposed=st.booleans(), spots=SPOTS,
       ls=st.sampled_from([0.0, 0.1]), reduction=st.sampled_from(["none", "mean", "sum"]),
       ignored=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_cross_entropy(n, c, spatial, dtype, transposed, spots, ls, reduction, ignored, seed):
    rng = np.random.default_rng(seed)
    c = max(c, 1) if spatial else c  # (PyTorch rejects (N, 0, d) logits)
    ls = ls if c else 0.0  # (and makes a NaN of label smoothing's 1 / C over no classes, even for no rows)
    shape = (n, c, 2) if spatial else (n, c)
    x = layout(inject(_normal(seed, shape, 3.0), spots), transposed)
    t = rng.integers(0, max(c, 1), (n, 2) if spatial else (n,))
    t[(rng.random(t.shape) < ignored) | (c == 0)] = -100

    def fn(mod, make):
        return lambda x: mod.cross_entropy(x, make(t), reduction=reduction, label_smoothing=ls)

    compare_backends(fn(F, tinyml.tensor), fn(TF, torch.tensor), [x], dtype=dtype, seed=seed)


@SETTINGS
@given(rows=SIZES, n=SIZES, dtype=DTYPES, transposed=st.booleans(), spots=SPOTS,
       weight_spots=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.just(math.nan)), max_size=1),
       affine=st.sampled_from(["none", "weight", "both"]), seed=st.integers(0, 2**16))
def test_layer_norm(rows, n, dtype, transposed, spots, weight_spots, affine, seed):
    x = layout(inject(_spread_rows(seed, (rows, n)), spots), transposed)
    params = [inject(_normal(seed + 1, (n,)), weight_spots), _normal(seed + 2, (n,))]
    params = params[:["none", "weight", "both"].index(affine)]
    # (N = 1: xhat = 0, so dx = 0 and dweight = 0 exactly; PyTorch's rounding noise there, times
    # 1/sqrt(eps), reaches 1e-4)
    compare_backends(lambda x, *p: F.layer_norm(x, (n,), *p), lambda x, *p: TF.layer_norm(x, (n,), *p),
                     [x, *params], dtype=dtype, seed=seed,
                     atol=1e-3 if n == 1 and dtype == "float32" else None)


@SETTINGS
@given(rows=SIZES, n=SIZES, dtype=DTYPES, transposed=st.booleans(), spots=SPOTS, weight=st.booleans(),
       seed=st.integers(0, 2**16))
def test_rms_norm(rows, n, dtype, transposed, spots, weight, seed):
    x = layout(inject(_spread_rows(seed, (rows, n)), spots), transposed)
    params = [_normal(seed + 1, (n,))] if weight else []
    compare_backends(lambda x, *p: F.rms_norm(x, (n,), *p), lambda x, *p: TF.rms_norm(x, (n,), *p),
                     [x, *params], dtype=dtype, seed=seed)


def _torch_attention(causal, has_mask, scale):
    """PyTorch's math attention; causal masking as exclusion (torch.where: a masked score is the constant
    -inf, whose gradient is 0), as the fused kernels do."""
    def fn(q, k, v, *mask):
        if not causal:
            with sdpa_kernel(SDPBackend.MATH):
                return TF.scaled_dot_product_attention(q, k, v, attn_mask=mask[0] if has_mask else None,
                                                       scale=scale)
        s = torch.matmul(q, k.transpose(-2, -1)) * scale
        s = torch.where(torch.ones(s.shape[-2:], dtype=torch.bool).tril(), s, -math.inf)
        return torch.matmul(torch.ops.aten._safe_softmax(s, -1), v)  # the math backend's softmax
    return fn


@SETTINGS
@given(b=st.sampled_from([1, 2]), tq=SEQ, tk=SEQ, e=st.sampled_from([0, 1, 3, 4, 8]),
       ev=st.sampled_from([1, 3, 4]), dtype=DTYPES, transposed=st.booleans(), causal=st.booleans(),
       masked=st.sampled_from(["none", "float", "dead rows"]),
       spots=st.tuples(SPOTS, SPOTS, SPOTS, SPOTS), seed=st.integers(0, 2**16))
def test_attention(b, tq, tk, e, ev, dtype, transposed, causal, masked, spots, seed):
    if causal:
        masked = "none"  # PyTorch: an explicit attn_mask can not be set with is_causal
    if tk == 0:  # no keys: zeros, as a fully masked row (PyTorch's math backend turns every output
        spots = ([], [], [], [])  # NaN when any query holds a NaN, a quirk not followed here)
    q, k, v = (layout(inject(_normal(seed + i, (b, 2, t, d), 1.0), spots[i]), transposed)
               for i, (t, d) in enumerate([(tq, e), (tk, e), (tk, ev)]))
    arrays = [q, k, v]
    if masked != "none":
        mask = _normal(seed + 3, (tq, tk), 1.0)
        if masked == "dead rows" and tq:
            mask[:: 2] = -math.inf  # fully masked query rows: zeros, not NaN
        arrays.append(inject(mask, spots[3]))
    scale = 1 / math.sqrt(e) if e else 1.0  # E = 0: every score is 0 whatever the scale

    def ours(q, k, v, *mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[0] if mask else None, is_causal=causal)

    compare_backends(ours,
                     _torch_attention(causal, masked != "none", scale), arrays, dtype=dtype, seed=seed,
                     constants=len(arrays) - 3)
