"""Outputs of at least 16 MiB (the default of _C.stream_min_bytes()) are written with streaming stores
(csrc/stream_store.h, stream_out): layer_norm and add_layer_norm through a row buffer, gelu and silu
kStreamChunkBytes at a time. The values must be those of the cached path (the same row and chunk
functions), which the small-shape tests check against the reference; here the large path is compared
with the reference and with the cached path's values computed row block by row block below the
threshold (tests/ops/test_stream_store.py forces the threshold on small shapes instead)."""
import numpy as np
import pytest
from cpu_kernel_helpers import _C, close, needs_C

ROWS, N = 5504, 768  # 16.1 MiB of float32 output: just above the threshold


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(0)
    x, r, dy, ds = (rng.standard_normal((ROWS, N)).astype(np.float32) for _ in range(4))
    x[7, 3] = np.nan  # NaN rows propagate through the streamed path too
    w, b = (rng.standard_normal(N).astype(np.float32) for _ in range(2))
    return x, r, dy, ds, w, b


def _in_blocks(fn, *arrays, rows=1024):
    """fn on row blocks small enough for the cached path, concatenated per output."""
    parts = [fn(*(a[i:i + rows] for a in arrays)) for i in range(0, arrays[0].shape[0], rows)]
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(p) for p in zip(*parts))
    return np.concatenate(parts)


@needs_C
def test_layer_norm_streamed_equals_cached(big):
    x, _, dy, _, w, b = big
    y, mean, rstd = _C.layer_norm_forward(x, w, b, 1e-5)
    cached = _in_blocks(lambda xs: _C.layer_norm_forward(xs, w, b, 1e-5)[0], x)
    assert np.array_equal(y, cached, equal_nan=True)
    assert np.isnan(y[7]).all() and np.isfinite(y[8]).all()
    dx, dw, db = _C.layer_norm_backward(dy, x, w, mean, rstd)
    blocks = _in_blocks(lambda g, xs, m, s: _C.layer_norm_backward(g, xs, w, m, s)[0], dy, x, mean, rstd)
    assert np.array_equal(dx, blocks, equal_nan=True)


@needs_C
def test_add_layer_norm_streamed_equals_cached(big):
    x, r, dy, ds, w, b = big
    x = np.nan_to_num(x)
    s, y, mean, rstd = _C.add_layer_norm_forward(x, r, w, b, 1e-5)
    expected = _in_blocks(lambda a, c: _C.add_layer_norm_forward(a, c, w, b, 1e-5)[1], x, r)
    assert np.array_equal(s, x + r) and np.array_equal(y, expected)
    dx, _, _ = _C.add_layer_norm_backward(dy, ds, s, w, mean, rstd)
    blocks = _in_blocks(lambda g, d, ss, m, sd: _C.add_layer_norm_backward(g, d, ss, w, m, sd)[0],
                        dy, ds, s, mean, rstd)
    assert np.array_equal(dx, blocks)


@needs_C
@pytest.mark.parametrize("kind", ["gelu", "gelu_tanh", "silu"])
def test_activations_streamed_equal_cached(big, kind):
    x, _, dy, _, _, _ = big
    if kind == "silu":
        fwd, bwd = _C.silu_forward, lambda a, g: _C.silu_backward(a, g)
    else:
        approx = "tanh" if kind == "gelu_tanh" else "none"

        def fwd(a):
            return _C.gelu_forward(a, approx)

        def bwd(a, g):
            return _C.gelu_backward(a, g, approx)
    assert np.array_equal(fwd(x), _in_blocks(fwd, x), equal_nan=True)
    assert np.array_equal(bwd(x, dy), _in_blocks(bwd, x, dy), equal_nan=True)
    if kind == "gelu_tanh":  # and the values are gelu's (rows 0-6: no NaN)
        v = x[:7].astype(np.float64)
        ref = 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3)))
        close(fwd(x)[:7], ref.astype(np.float32), np.float32, "gelu tanh vs formula")
