"""csrc/pool_upsample.h's bilinear kernels after session 12: the backward's row pass sums four vectors
of columns at a time (sources outer) with a one-vector remainder and an overlapping last vector, and
both passes prefetch within each thread's chunk of planes. Against PyTorch and the numpy reference
on output widths around those blocks (16 floats, 8 doubles per vector), with NaN/inf; the same bits
on 1 and 2 threads; empty batches. The three builds a machine may run (AVX-512, x86-64-v3, baseline
x86-64) are checked by compiling tests/ops/upsample_check.cpp, which compares the kernels with a
double reference (no Python needed: pool_upsample.h includes no pybind11)."""
import os
import re
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import _C, close_scaled, impls, needs_C
from native_builds import COMPILER, ROOT, cpu_has, needs_native_x86

import tinyml

_RNG = np.random.default_rng(1612)
BUILDS = {"dispatched": [], "x86-64-v3": ["-DTINYML_NO_CLONES", "-march=x86-64-v3"],
          "x86-64": ["-DTINYML_NO_CLONES", "-march=x86-64"]}


def _torch_pair(x, dy, out, ac):
    xt = torch.tensor(x, requires_grad=True)
    y = TF.interpolate(xt, size=out, mode="bilinear", align_corners=ac)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy()


def _check(got, want, ref, dtype):
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    close_scaled(got[finite], want[finite], dtype)
    close_scaled(got[finite], ref[finite], dtype)


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size,out", [((5, 32), (10, 64)), ((3, 40), (7, 80)), ((4, 33), (9, 63)),
                                      ((6, 50), (12, 129)), ((7, 57), (14, 114)), ((9, 16), (4, 31)),
                                      ((3, 20), (5, 97))])
@pytest.mark.parametrize("ac", [False, True])
def test_bilinear_row_blocks(dtype, size, out, ac):
    """Output widths of 4 vectors and more (float32: 64, 80, 114, 129; float64: 31..129 spans
    1-16 vectors), with and without a remainder and an overlapping last vector; 2x widths take the
    column stencil. NaN and inf in x and dy, where they fall."""
    x = _RNG.standard_normal((2, 3) + size).astype(dtype)
    x[0, 1, size[0] // 2, size[1] - 1] = np.inf
    x[1, 2, 0, 1] = np.nan
    dy = _RNG.standard_normal((2, 3) + out).astype(dtype)
    dy[0, 0, out[0] - 1, out[1] // 2] = -np.inf
    dy[1, 1, 0, out[1] - 1] = np.nan
    ty, tdx = _torch_pair(x, dy, out, ac)
    cpu_f, ref_f = impls("upsample2d_forward")
    cpu_b, ref_b = impls("upsample2d_backward")
    args = ("bilinear", ac, (None, None))
    _check(cpu_f(x, out, *args), ty, ref_f(x, out, *args), dtype)
    _check(cpu_b(dy, x.shape, *args), tdx, ref_b(dy, x.shape, *args), dtype)


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(3, 7, 12, 40), (3, 7, 112, 112)])
def test_bilinear_same_bits_on_one_and_two_threads(dtype, shape):
    """Planes go to threads in chunks of 4 and the prefetches stop at a chunk's end: 1 and 2 threads
    give the same bits, for a plane count that is not a multiple of the chunk; the larger shape
    moves more than the kernels' prefetch threshold (4 MiB), the smaller less."""
    x = _RNG.standard_normal(shape).astype(dtype)
    out = (2 * shape[2], 2 * shape[3])
    dy = _RNG.standard_normal(shape[:2] + out).astype(dtype)
    cpu_f, ref_f = impls("upsample2d_forward")
    cpu_b, ref_b = impls("upsample2d_backward")
    args = ("bilinear", False, (None, None))
    before = tinyml.get_num_threads()
    runs = []
    try:
        for threads in (1, 2, 2):
            tinyml.set_num_threads(threads)
            runs.append((cpu_f(x, out, *args), cpu_b(dy, x.shape, *args)))
    finally:
        tinyml.set_num_threads(before)
    for y, dx in runs[1:]:
        assert np.array_equal(y, runs[0][0]) and np.array_equal(dx, runs[0][1])
    close_scaled(runs[0][0], ref_f(x, out, *args), dtype)
    close_scaled(runs[0][1], ref_b(dy, x.shape, *args), dtype)


def _taps(shape, out, dtype):
    from tinyml.backends.cpu.pool import _taps as taps  # after needs_C: it imports tinyml._C
    return taps(shape[2:], out, "bilinear", False, (None, None), np.dtype(dtype))


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bilinear_empty_batch(dtype):
    """A batch of 0: the (0, C, oh, ow) result and the (0, C, h, w) gradient, no work."""
    x = np.zeros((0, 3, 5, 6), dtype)
    y = _C.upsample2d_forward(x, 10, 12, *_taps(x.shape, (10, 12), dtype), nearest=False)
    assert y.shape == (0, 3, 10, 12) and y.dtype == dtype
    dx = _C.upsample2d_backward(np.zeros((0, 3, 10, 12), dtype), 5, 6, *_taps(x.shape, (10, 12), dtype),
                                nearest=False)
    assert dx.shape == (0, 3, 5, 6) and dx.dtype == dtype


@needs_native_x86
@pytest.mark.parametrize("build", list(BUILDS))
def test_bilinear_kernels_in_each_build(build, tmp_path):
    """Every case of upsample_check.cpp (2x and other sizes, align_corners both ways, NaN/inf/-0):
    within 1e-6 (float) / 1e-14 (double) of the double reference, relative to the largest finite
    value (measured: 1.8e-7 / 3.5e-16), NaN and inf where the reference has them, and the same bits
    on 1 and 2 threads."""
    if build == "x86-64-v3" and not cpu_has("avx2", "fma", "bmi2", "movbe"):
        pytest.skip("the CPU is not x86-64-v3")
    exe = tmp_path / "upsample_check"
    source = os.path.join(ROOT, "tests", "ops", "upsample_check.cpp")
    flags = ["-O2", "-fopenmp", "-std=c++17", "-I" + os.path.join(ROOT, "csrc"), *BUILDS[build]]
    subprocess.run([COMPILER, *flags, source, "-o", str(exe)], check=True, capture_output=True)
    report = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    rows = re.findall(r"^case (\S+) ac=(\d) (float|double) fwd_err (\S+) bwd_err (\S+) nan_wrong (\d+) "
                      r"threads_differ (\d+)$", report, re.M)
    assert len(rows) == 68, report
    for case, ac, dt, fe, be, wrong, differ in rows:
        bound = 1e-6 if dt == "float" else 1e-14
        what = f"{build}: {case} align_corners={ac} {dt}"
        assert float(fe) <= bound and float(be) <= bound, f"{what}: errors {fe} / {be}\n{report}"
        assert wrong == "0", f"{what}: NaN/inf differ from the reference\n{report}"
        assert differ == "0", f"{what}: 1 and 2 threads differ\n{report}"
