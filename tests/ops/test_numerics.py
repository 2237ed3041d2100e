"""NaN/inf propagation, precision and empty shapes of the fused ops on every backend (numpy
reference, C++, Triton on the cuda device or its interpreter), against PyTorch.

    softmax / log_softmax / cross_entropy: a NaN or +inf logit makes its row NaN, forward and
        backward (the float32 exp used to clamp NaN to 88.4 and return a number); log-probabilities
        are (x - max) - log sum, exact at logits of 1e8 and 1e30
    layer_norm: a constant row has its exact mean (y = bias, not 1e-4 of noise); rows whose squares
        overflow float32 (|x| >= 1e19) normalise as in float64; rms_norm likewise
    attention: a NaN query row, key, value or mask entry gives NaN where PyTorch's math attention
        does; a fully masked row gives 0; head dim 0, Tq = 0 and Tk = 0 work
    zero-width rows (N = 0) and zero rows for the norms and softmax, C = 0 for cross_entropy
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from numerics_helpers import BACKENDS, backend_context, compare
from torch.nn.attention import SDPBackend, sdpa_kernel

import tinyml
import tinyml.nn.functional as F
from tinyml.testing import assert_close

NAN, INF = math.nan, math.inf
ROWS = np.array([[1.0, NAN, 2.0], [1.0, 2.0, 3.0], [-INF, -INF, -INF], [INF, 1.0, 2.0], [-INF, 1.0, 2.0]])


def _long_rows(n=1037):
    """Rows longer than a vector, a chunk and a block, with the odd entry at the tail or the head."""
    x = np.random.default_rng(0).standard_normal((4, n)) * 3
    x[0, -1] = NAN
    x[1, 0] = INF
    x[2, n // 2] = -INF
    return x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_family_propagates_nan_and_inf(backend, name, dtype):
    for x in (ROWS, _long_rows()):
        compare(lambda t: getattr(F, name)(t, -1), lambda t: getattr(torch, name)(t, -1), [x], dtype=dtype,
                backend=backend)
    out, _ = compare(lambda t: getattr(F, name)(t, -1), lambda t: getattr(torch, name)(t, -1), [ROWS],
                     backend=backend)
    assert np.isnan(out[[0, 2, 3]]).all() and not np.isnan(out[[1, 4]]).any()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ls", [0.0, 0.1])
@pytest.mark.parametrize("targets", [[0, -100, -100, 1, 0], [-100, 1, 0, -100, -100]])
def test_cross_entropy_propagates_nan_and_inf(backend, ls, targets):
    # a NaN/+inf/all -inf row: NaN loss; ignored rows: loss 0 but NaN gradient where log_softmax is
    # NaN (PyTorch's log_softmax + nll); a -inf target logit: an infinite loss, a finite gradient
    for reduction in ("none", "mean"):
        def fn(mod, make):
            return lambda x: mod.cross_entropy(x, make(targets, device=x.device), reduction=reduction,
                                               label_smoothing=ls)
        compare(fn(F, tinyml.tensor), fn(TF, torch.tensor), [ROWS], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_nan_in_a_whole_leading_chunk(backend):
    # the C++ kernel walks a row in chunks of 512 with a running max; a chunk of only NaN (or only
    # -inf) before any finite logit must still make the row NaN (or count as probability 0)
    x = np.random.default_rng(1).standard_normal((3, 1100))
    x[0, :600] = NAN
    x[1, :600] = -INF
    t = [700, 800, 5]
    for ls in (0.0, 0.1):
        def fn(mod, make, ls=ls):
            return lambda x: mod.cross_entropy(x, make(t, device=x.device), reduction="none",
                                               label_smoothing=ls)
        out, _ = compare(fn(F, tinyml.tensor), fn(TF, torch.tensor), [x], backend=backend)
        assert np.isnan(out[0]) and np.isfinite(out[2]) and (np.isfinite(out[1]) or ls)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("offset", [1e3, 1e6, 1e8, 1e30])
def test_log_softmax_and_cross_entropy_keep_precision_at_large_logits(backend, offset):
    # float32 logits offset + small: (x - max) is exact near the max, so log-probabilities keep
    # PyTorch's ~1e-7 error; x - (max + log s) lost log s to the rounding of max (3.9 at 1e8)
    x = offset + np.array([[0.0, 1.0, -2.0, 0.5], [0.0, 0.0, 0.0, 0.0], [3.0, -1.0, 0.25, 0.0]])
    x32 = x.astype(np.float32).astype(np.float64)
    tight = {"rtol": 1e-6, "atol": 1e-6}
    oracle = {"dtype": "float32", "backend": backend, **tight}
    ref = torch.log_softmax(torch.tensor(x32), -1).numpy()  # float64, on the float32 values
    out, _ = compare(lambda t: F.log_softmax(t, -1), lambda t: torch.log_softmax(t, -1), [x], **oracle)
    np.testing.assert_allclose(out, ref, **tight)
    assert np.allclose(out[1], math.log(0.25), rtol=0, atol=1e-6)  # all-equal logits (1e30 too)
    t = [1, 2, 0]
    for ls in (0.0, 0.2):
        def fn(mod, make, ls=ls):
            return lambda x: mod.cross_entropy(x, make(t, device=x.device), reduction="none",
                                               label_smoothing=ls)
        out, _ = compare(fn(F, tinyml.tensor), fn(TF, torch.tensor), [x], **oracle)
        ref = fn(TF, torch.tensor)(torch.tensor(x32)).numpy()  # float64 on the float32 values
        np.testing.assert_allclose(out, ref, **tight)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_norm_of_constant_rows_is_exactly_the_bias(backend, dtype):
    # the mean is exact, so xhat = 0: y = b (PyTorch's forward gives that too), dweight = 0 and
    # dx = rstd (g - mean g) with rstd = 1/sqrt(eps) (PyTorch's backward leaves ~1e-4 of noise there)
    rng = np.random.default_rng(2)
    x = np.array([[0.1] * 768, [1 / 3] * 768, [7.77] * 768, [-3e4] * 768])
    w, b, dy = rng.standard_normal(768), rng.standard_normal(768), rng.standard_normal(x.shape)
    out, _ = compare(lambda x, w, b: F.layer_norm(x, (768,), w, b),
                     lambda x, w, b: TF.layer_norm(x, (768,), w, b), [x, w, b], dtype=dtype, backend=backend,
                     grad=False)
    np.testing.assert_array_equal(out, np.broadcast_to(b.astype(dtype), out.shape))
    device, ctx = backend_context(backend)
    dt = getattr(tinyml, dtype)
    with ctx:
        xt, wt, bt = (tinyml.tensor(a, dtype=dt, device=device, requires_grad=True) for a in (x, w, b))
        F.layer_norm(xt, (768,), wt, bt).backward(tinyml.tensor(dy, dtype=dt, device=device))
    g = dy.astype(dtype) * w.astype(dtype)
    assert_close(xt.grad, (g - g.mean(-1, keepdims=True)) / math.sqrt(1e-5), kind="reduction")
    assert (wt.grad.cpu().numpy() == 0).all()
    assert_close(bt.grad, dy.astype(dtype).sum(0), kind="reduction")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("magnitude", [1e19, 1e20, 1e30, 1e38])
def test_norms_of_rows_whose_squares_overflow_float32(backend, magnitude):
    # PyTorch's float32 layer_norm gives zeros or NaN from 1e20 and rms_norm zeros from 1e19
    # (the squares overflow); tinyml redoes such a row in float64, so the oracle is float64 PyTorch
    x = magnitude * np.array([[1.0, -1.0, 0.5, 0.0, 0.25], [1.0, 1.5, 0.5, 1.0, 0.75], [1e-30, 0, 0, 0, 0]])
    x32 = torch.tensor(x.astype(np.float32).astype(np.float64))
    eps = float(np.finfo(np.float32).eps)
    w_np = np.linspace(0.5, 1.5, 5)
    device, ctx = backend_context(backend)
    with ctx:
        t = tinyml.tensor(x, dtype=tinyml.float32, device=device, requires_grad=True)
        w = tinyml.tensor(w_np, dtype=tinyml.float32, device=device, requires_grad=True)
        for ours, theirs in ((F.layer_norm(t, (5,), w), TF.layer_norm(x32, (5,), torch.tensor(w_np))),
                             (F.rms_norm(t, (5,), w), TF.rms_norm(x32, (5,), torch.tensor(w_np), eps=eps))):
            got = ours.detach().cpu().numpy()
            np.testing.assert_allclose(got, theirs.numpy(), rtol=1e-5, atol=1e-6)
            ours.backward(tinyml.ones_like(ours))
            assert np.isfinite(t.grad.cpu().numpy()).all() and np.isfinite(w.grad.cpu().numpy()).all()
            t.grad = w.grad = None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(3, 0), (0, 5), (0, 0), (2, 0, 4)])
def test_empty_rows_and_zero_width_rows(backend, shape):
    rng = np.random.default_rng(3)
    x, n = rng.standard_normal(shape), shape[-1]
    for name in ("softmax", "log_softmax"):
        for dim in (-1, 0):
            compare(lambda t: getattr(F, name)(t, dim), lambda t: getattr(torch, name)(t, dim), [x],
                    backend=backend)
    w, b = rng.standard_normal(n), rng.standard_normal(n)
    compare(lambda x, w, b: F.layer_norm(x, (n,), w, b), lambda x, w, b: TF.layer_norm(x, (n,), w, b),
            [x, w, b], backend=backend)
    compare(lambda x: F.layer_norm(x, (n,)), lambda x: TF.layer_norm(x, (n,)), [x], backend=backend)
    compare(lambda x, w: F.rms_norm(x, (n,), w), lambda x, w: TF.rms_norm(x, (n,), w), [x, w],
            backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_with_no_classes_or_no_rows(backend):
    for shape, t in (((3, 0), [-100, -100, -100]), ((0, 4), [])):
        for reduction in ("none", "sum"):
            def fn(mod, make, t=t, reduction=reduction):
                return lambda x: mod.cross_entropy(x, make(np.array(t, np.int64), device=x.device),
                                                   reduction=reduction)
            compare(fn(F, tinyml.tensor), fn(TF, torch.tensor), [np.zeros(shape)], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shapes", [((1, 2, 3, 0), (1, 2, 4, 0), (1, 2, 4, 0)),   # E = 0 (was 1 / sqrt(0))
                                    ((1, 2, 3, 0), (1, 2, 4, 0), (1, 2, 4, 5)),   # E = 0: uniform weights
                                    ((1, 2, 0, 4), (1, 2, 3, 4), (1, 2, 3, 4)),   # Tq = 0
                                    ((1, 2, 3, 4), (1, 2, 0, 4), (1, 2, 0, 4)),   # Tk = 0: zeros
                                    ((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 0)),   # Ev = 0
                                    ((0, 2, 3, 4), (0, 2, 5, 4), (0, 2, 5, 4))])  # B = 0
@pytest.mark.parametrize("causal", [False, True])
def test_attention_empty_shapes(backend, shapes, causal):
    arrays = [np.random.default_rng(4).standard_normal(s) for s in shapes]
    compare(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
            lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=causal), arrays,
            backend=backend)


def test_cuda_attention_refuses_float64_by_name():
    q = tinyml.randn(1, 2, 4, 3, dtype=tinyml.float64, device="cuda")
    with pytest.raises(TypeError, match="float32, float16 and bfloat16, got float64"):
        F.scaled_dot_product_attention(q, q, q)


def _math_attention(q, k, v, *mask):
    with sdpa_kernel(SDPBackend.MATH):  # PyTorch's reference path (its fused CPU kernel drops a NaN query)
        return TF.scaled_dot_product_attention(q, k, v, attn_mask=mask[0] if mask else None)


@pytest.mark.parametrize("backend,dtype", [(b, d) for b in BACKENDS for d in ("float32", "float64")
                                           if (b, d) != ("cuda", "float64")])  # see the test below
@pytest.mark.parametrize("case", ["nan query", "inf query", "nan key", "nan value", "nan mask", "+inf mask",
                                  "masked row", "masked row and nan", "masked column, nan value"])
def test_attention_propagates_nan_as_torch(backend, dtype, case):
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((1, 2, 4, 3)) for _ in range(3))
    mask = np.zeros((4, 4))
    where, what = {"nan query": ((q, (0, 0, 1, 0)), NAN), "inf query": ((q, (0, 1, 1, slice(None))), INF),
                   "nan key": ((k, (0, 0, 2, 0)), NAN), "nan value": ((v, (0, 1, 2, 1)), NAN),
                   "nan mask": ((mask, (1, 2)), NAN), "+inf mask": ((mask, (1, 2)), INF),
                   "masked row": ((mask, (1, slice(None))), -INF),
                   "masked row and nan": ((mask, (2, slice(None))), -INF),
                   "masked column, nan value": ((mask, (slice(None), 2)), -INF)}[case]
    where[0][where[1]] = what
    if case == "masked row and nan":
        mask[2, 1] = NAN
    if case == "masked column, nan value":
        v[0, 0, 2, 1] = NAN  # probability 0 times NaN: NaN, as PyTorch's matmul
    arrays = [q, k, v] + ([mask] if "mask" in case else [])

    def ours(q, k, v, *mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[0] if mask else None)

    out, _ = compare(ours, _math_attention, arrays, dtype=dtype, backend=backend, constants=len(arrays) - 3)
    if case == "nan query":  # the row that used to come out as zeros
        assert np.isnan(out[0, 0, 1]).all() and not np.isnan(out[0, 0, [0, 2, 3]]).any()
    if case == "masked row":
        assert (out[0, :, 1] == 0).all()
