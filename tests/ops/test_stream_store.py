"""Streaming (non-temporal) stores for large outputs and software prefetch (csrc/stream_store.h).
Calls that write at least _C.stream_min_bytes() build their output in small L1 buffers and stream it
out (layer_norm's backward, add_layer_norm's forward, nearest upsampling's forward). Only where the
bytes go changes, so the streamed outputs must equal the plain path's bit for bit: here the threshold
is set to 0 (every call streams) or -1 (none does) with _C.set_stream_min_bytes, on sizes that put rows
at every alignment (odd widths, odd views), with NaN, infinities and signed zeros, on 1 and 2 threads,
and once at the default threshold on an output just above it. The pool kernels' prefetching (calls
that move 4 MiB or more) is checked against PyTorch and against the same planes in small calls."""
import os
import re
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import _C, needs_C
from native_builds import COMPILER, ROOT, needs_native_x86

import tinyml

_RNG = np.random.default_rng(13)


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


def _same(a, b):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    return len(a) == len(b) and all(u.shape == v.shape and np.array_equal(_bits(u), _bits(v))
                                    for u, v in zip(a, b))


def _special(x):
    flat = x.reshape(-1)
    if flat.size >= 8:
        flat[[1, 3, 5, 7]] = [np.nan, np.inf, -np.inf, -0.0]
    return x


def _both(fn, threads=(1, 2)):
    """fn() with streaming forced on and off, on each thread count: all results bit-identical."""
    old_threads, old = tinyml.get_num_threads(), _C.stream_min_bytes()
    out = []
    try:
        for t in threads:
            tinyml.set_num_threads(t)
            for thr in (-1, 0):
                _C.set_stream_min_bytes(thr)
                out.append(fn())
    finally:
        _C.set_stream_min_bytes(old)
        tinyml.set_num_threads(old_threads)
    for o in out[1:]:
        assert _same(out[0], o)
    return out[0]


@needs_C
def test_threshold_setter_round_trips():
    old = _C.stream_min_bytes()
    assert old == _C.STREAM_OUT_BYTES == 16 << 20
    assert _C.set_stream_min_bytes(123) == old and _C.stream_min_bytes() == 123
    assert _C.set_stream_min_bytes(old) == 123


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(4, 64, 56, 56), (3, 77, 57, 61), (1, 17, 400, 130)])
def test_max_pool_2x2_prefetched_matches_torch(dtype, shape):
    """Calls that move 4 MiB or more ask for x, y, idx (forward) and dy, idx, dx (backward) ahead:
    values, indices and gradient as PyTorch's, on 1 and 2 threads (odd sizes: a last row and column
    in no window; chunks of 4 planes that do not divide the plane count)."""
    x = _special(_RNG.integers(-3, 4, shape).astype(dtype))
    moved = x.nbytes + x.nbytes // 4 * (1 + 8 // x.itemsize)
    assert moved >= 4 << 20
    oh, ow = shape[2] // 2, shape[3] // 2
    y, idx = _both(lambda: _C.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1, oh, ow))
    ty, ti = TF.max_pool2d(torch.tensor(x), 2, 2, return_indices=True)
    assert np.array_equal(idx, ti.numpy()) and np.array_equal(y, ty.numpy(), equal_nan=True)
    dy = _special(_RNG.standard_normal(y.shape).astype(dtype))
    dx = _both(lambda: _C.max_pool2d_backward(dy, idx, *shape[2:]))
    xt = torch.tensor(x, requires_grad=True)
    TF.max_pool2d(xt, 2, 2).backward(torch.tensor(dy))
    assert np.array_equal(_bits(dx), _bits(xt.grad.numpy()))


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size,factor", [((5, 6), (2, 2)), ((56, 56), (2, 2)), ((7, 13), (3, 3)),
                                         ((3, 5), (1, 3)), ((2, 500), (2, 2)), ((2, 700), (2, 2)),
                                         ((9, 33), (4, 1))])
def test_nearest_streamed_equals_plain(dtype, size, factor):
    """Integer factors (the copy path that streams); width 500 x 2: an input row's two output rows
    (2000 elements) fill the buffer alone; width 700: 2800 elements, more than the buffer, plain."""
    x = _special(_RNG.standard_normal((2, 3) + size).astype(dtype))
    out = (size[0] * factor[0], size[1] * factor[1])
    y = _both(lambda: tinyml.backends.cpu.pool.upsample2d_forward(x, out, "nearest", None, (None, None)))
    ref = TF.interpolate(torch.tensor(x), size=out, mode="nearest").numpy()
    assert np.array_equal(_bits(y), _bits(ref))


@needs_C
def test_empty_and_single_plane():
    for shape in [(0, 3, 8, 8), (1, 1, 2, 2)]:
        x = np.ones(shape, np.float32)
        _both(lambda: _C.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1, shape[2] // 2, shape[3] // 2))
        _both(lambda: tinyml.backends.cpu.pool.upsample2d_forward(x, (2 * shape[2], 2 * shape[3]), "nearest",
                                                                   None, (None, None)))


@needs_C
def test_default_threshold_just_above():
    """At the default threshold: 335 planes of 112 x 112 float32 = 16.8 MB of output streams, and
    equals the plain path's (the threshold turned off) and PyTorch's."""
    x = _special(_RNG.standard_normal((1, 335, 56, 56)).astype(np.float32))
    assert 335 * 112 * 112 * 4 >= _C.stream_min_bytes()
    up = tinyml.backends.cpu.pool.upsample2d_forward
    y = up(x, (112, 112), "nearest", None, (None, None))
    old = _C.set_stream_min_bytes(-1)
    try:
        y_plain = up(x, (112, 112), "nearest", None, (None, None))
    finally:
        _C.set_stream_min_bytes(old)
    assert np.array_equal(_bits(y), _bits(y_plain))
    ref = TF.interpolate(torch.tensor(x), size=(112, 112), mode="nearest").numpy()
    assert np.array_equal(_bits(y), _bits(ref))
    # the backward of so large a call asks for dy ahead: the same bits as small calls of a few planes
    dy = _special(_RNG.standard_normal(y.shape).astype(np.float32))
    down = tinyml.backends.cpu.pool.upsample2d_backward
    dx = down(dy, x.shape, "nearest", None, (None, None))
    parts = [down(dy[:, i:i + 5], (1, min(5, 335 - i), 56, 56), "nearest", None, (None, None))
             for i in range(0, 335, 5)]
    assert np.array_equal(_bits(dx), _bits(np.concatenate(parts, axis=1)))


def _odd_view(shape, dtype, seed):
    """A C-contiguous array starting one element past an aligned allocation."""
    n = int(np.prod(shape))
    buf = np.random.default_rng(seed).standard_normal(n + 1).astype(dtype)
    return _special(buf[1:].reshape(shape))


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows,n", [(0, 8), (3, 1), (5, 7), (33, 768), (9, 1025), (4, 2049)])
def test_norms_streamed_equal_plain(dtype, rows, n):
    """layer_norm, rms_norm and add_layer_norm, forward and backward: rows of every alignment streamed
    from the row buffer (n = 2049 > its 2048 elements: plain) equal the plain path's."""
    x, r, dy, ds = (_odd_view((rows, n), dtype, s) for s in (3, 4, 5, 6))
    w, b = _odd_view((n,), dtype, 7), _odd_view((n,), dtype, 8)
    y, mean, rstd = _both(lambda: _C.layer_norm_forward(x, w, b, 1e-5))
    _both(lambda: _C.layer_norm_backward(dy, x, w, mean, rstd))
    _, rs = _both(lambda: _C.rms_norm_forward(x, w, 1e-6))
    _both(lambda: _C.rms_norm_backward(dy, x, w, rs))
    s, _, m2, r2 = _both(lambda: _C.add_layer_norm_forward(x, r, w, b, 1e-5))
    _both(lambda: _C.add_layer_norm_backward(dy, ds, s, w, m2, r2))


BUILDS = {"default": [], "x86-64-v3": ["-march=x86-64-v3"], "x86-64": ["-march=x86-64"]}


@needs_native_x86
@pytest.mark.parametrize("build", list(BUILDS))
def test_stream_out_paths_in_each_build(build, tmp_path):
    """tests/ops/stream_store_check.cpp: each store path (AVX-512, AVX, SSE2; those the CPU runs) copies
    every length 0..300 bytes (and a few large ones) to every offset of a 64-byte line exactly and
    touches nothing around it; built as the extension's default, x86-64-v3 and baseline x86-64."""
    exe = tmp_path / "stream_store_check"
    source = os.path.join(ROOT, "tests", "ops", "stream_store_check.cpp")
    flags = ["-O2", "-std=c++17", "-I" + os.path.join(ROOT, "csrc"), *BUILDS[build]]
    subprocess.run([COMPILER, *flags, source, "-o", str(exe)], check=True, capture_output=True)
    report = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    rows = re.findall(r"^path (\S+) cases (\d+) bad (\d+)$", report, re.M)
    names = {name for name, _, _ in rows}
    assert {"sse2", "dispatch"} <= names, report
    for name, cases, bad in rows:
        assert int(cases) > 0 and bad == "0", f"{build}: path {name}\n{report}"
