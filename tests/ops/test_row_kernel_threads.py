"""The row kernels that pick their team by size (csrc/team_size.h): layer_norm, add_layer_norm and
cross_entropy run on one thread below two threads' worth of elements and on the team above it. The
rows are computed alone, so the outputs are bit-identical for every thread count and on both sides of
the threshold; layer_norm's weight/bias gradients keep their per-part sums (one part per thread of
max_threads()) whether one thread or the team runs the parts, so they are deterministic per thread
count and match the reference."""
import numpy as np
import pytest
from cpu_kernel_helpers import _C, close, impls, needs_C, rand

import tinyml

# rows x width: under the old 32768-element threshold, between it and the new one (2 x 65536), above it,
# with odd rows (parts of unequal length) and widths that leave vector tails
SHAPES = [(100, 129), (301, 257), (768, 128), (1031, 131), (2048, 96)]


@pytest.fixture
def thread_counts():
    before = tinyml.get_num_threads()
    yield (1, 2, 3)
    tinyml.set_num_threads(before)


def _per_threads(counts, fn):
    out = []
    for n in counts:
        tinyml.set_num_threads(n)
        out.append(fn())
    return out


def _same_bits(outs, what):
    for got in outs[1:]:
        for a, b in zip(outs[0], got):
            if a is None:
                assert b is None, what
                continue
            np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=what)


@needs_C
@pytest.mark.parametrize("shape", SHAPES)
def test_add_layer_norm_rows_are_the_same_bits_on_any_team(thread_counts, shape):
    rng = np.random.default_rng(shape[0])
    x, res, dy, ds = (rand(rng, shape, np.float32) for _ in range(4))
    w, b = rand(rng, shape[1:], np.float32), rand(rng, shape[1:], np.float32)
    x[3, 5] = np.nan  # a NaN row stays a NaN row whatever thread runs it
    fwd = _per_threads(thread_counts, lambda: _C.add_layer_norm_forward(x, res, w, b, 1e-5))
    _same_bits(fwd, "add_layer_norm_forward")
    s, _, mean, rstd = fwd[0]
    bwd = _per_threads(thread_counts, lambda: _C.add_layer_norm_backward(dy, ds, s, w, mean, rstd))
    _same_bits([out[:1] for out in bwd], "add_layer_norm_backward dx")  # rows: any thread count
    ref_f = impls("add_layer_norm_forward")[1](x, res, w, b, 1e-5)
    close(fwd[0], ref_f, np.float32, "add_layer_norm_forward")
    ok = ~np.isnan(s).any(axis=1)  # the reference's dw is NaN in every column (the NaN row)
    ref_b = impls("add_layer_norm_backward")[1](dy[ok], ds[ok], s[ok], w, mean[ok], rstd[ok])
    ref_full = impls("add_layer_norm_backward")[1](dy, ds, s, w, mean, rstd)
    for n, out in zip(thread_counts, bwd):
        tinyml.set_num_threads(n)
        again = _C.add_layer_norm_backward(dy, ds, s, w, mean, rstd)
        _same_bits([out, again], f"add_layer_norm_backward on {n} threads, called twice")
        close(out[0][ok], ref_b[0], np.float32, "add_layer_norm_backward dx")
        assert np.isnan(out[1]).all()  # the NaN row's xhat reaches every column of dw, not db (sum of dy)
        close(out[2], ref_full[2], np.float32, "add_layer_norm_backward db")
        clean = _C.add_layer_norm_backward(dy[ok], ds[ok], s[ok], w, mean[ok], rstd[ok])
        close(clean, ref_b, np.float32, f"add_layer_norm_backward on {n} threads")


@needs_C
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_is_the_reference_on_any_team(thread_counts, shape, dtype):
    rng = np.random.default_rng(7)
    x, dy = rand(rng, shape, dtype), rand(rng, shape, dtype)
    w, b = rand(rng, shape[1:], dtype), rand(rng, shape[1:], dtype)
    fwd = _per_threads(thread_counts, lambda: _C.layer_norm_forward(x, w, b, 1e-5))
    _same_bits(fwd, "layer_norm_forward")
    _, mean, rstd = fwd[0]
    ref = impls("layer_norm_backward")[1](dy, x, w, mean, rstd)
    bwd = _per_threads(thread_counts, lambda: _C.layer_norm_backward(dy, x, w, mean, rstd))
    _same_bits([out[:1] for out in bwd], "layer_norm_backward dx")
    for out in bwd:
        close(out, ref, dtype, "layer_norm backward")


@needs_C
@pytest.mark.parametrize("shape", [(100, 65), (768, 65), (1031, 67), (2048, 65), (9, 20000)])
def test_cross_entropy_is_the_same_bits_on_any_team(thread_counts, shape):
    rng = np.random.default_rng(shape[0])
    x = rand(rng, shape, np.float32)
    t = rng.integers(0, shape[1], shape[0]).astype(np.int64)
    t[1] = -100  # an ignored row
    x[2, 0] = np.inf  # a NaN row
    dloss = rand(rng, shape[:1], np.float32)
    fwd = _per_threads(thread_counts, lambda: _C.cross_entropy_forward(x, t, -100, 0.1))
    _same_bits(fwd, "cross_entropy_forward")
    stats = fwd[0][1:]
    bwd = _per_threads(thread_counts, lambda: (_C.cross_entropy_backward(x, t, *stats, dloss, -100, 0.1),))
    _same_bits(bwd, "cross_entropy_backward")
    ok = np.ones(shape[0], bool)
    ok[2] = False
    ref = impls("cross_entropy_forward")[1](x[ok], t[ok], -100, 0.1)
    close(tuple(a[ok] for a in fwd[0]), ref, np.float32, "cross_entropy_forward")
    assert np.isnan(fwd[0][0][2])


@needs_C
@pytest.mark.parametrize("tokens,d", [(768, 128), (64, 128), (2048, 384), (3000, 7), (0, 16)])
def test_embedding_is_the_same_bits_on_any_team(thread_counts, tokens, d):
    # a baby GPT's 768 x 128 now runs on one thread, the small preset's 2048 x 384 on the team; the
    # scatter adds each column's rows in token order either way (repeated ids, a padding row)
    rng = np.random.default_rng(tokens)
    weight = rand(rng, (65, d), np.float32)
    ids = rng.integers(0, 65, tokens).astype(np.int64)
    dy = rand(rng, (tokens, d), np.float32)
    fwd = _per_threads(thread_counts, lambda: (_C.embedding_forward(weight, ids),))
    _same_bits(fwd, "embedding_forward")
    np.testing.assert_array_equal(fwd[0][0], weight[ids])
    bwd = _per_threads(thread_counts, lambda: (_C.embedding_backward(ids, dy, 65, 3),))
    _same_bits(bwd, "embedding_backward")
    ref = impls("embedding_backward")[1](ids, dy, 65, 3)
    close(bwd[0][0], ref, np.float32, "embedding_backward")
    assert not bwd[0][0][3].any()  # the padding row stays 0
