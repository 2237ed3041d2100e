"""csrc/scan_vec.h, the float lanes of the selective scan and causal conv1d kernels: exp2, exp,
softplus and silu against libm in double (max relative error over every 2999th float of each
range, and the IEEE ends: inf, -inf, NaN, overflow, underflow), the 16 x 16 register transpose,
the lane sums of sixteen vectors (reduce16) and the scan's decay exp2(dt (A log2 e)).
tests/ops/scan_vec_check.cpp is compiled with g++ for the three builds a machine may run: the
runtime-dispatched clones (AVX-512 here when the CPU has it), AVX2+FMA, and baseline x86-64."""
import os
import re
import subprocess

import pytest
from native_builds import COMPILER, ROOT, cpu_has, needs_native_x86

CHECK = os.path.join(ROOT, "tests", "ops", "scan_vec_check.cpp")
BUILDS = {"dispatched": [], "avx2": ["-DTINYML_NO_CLONES", "-mavx2", "-mfma"],
          "x86-64": ["-DTINYML_NO_CLONES"]}
BOUNDS = {"exp2": 2.5e-7, "exp": 2e-7, "softplus": 4e-7, "silu": 3e-7}  # measured 1.6e-7 .. 2.6e-7


@needs_native_x86
@pytest.mark.parametrize("build", list(BUILDS))
def test_scan_vec_math(build, tmp_path):
    if build == "avx2" and not cpu_has("avx2", "fma"):
        pytest.skip("the CPU has no AVX2+FMA")
    exe = tmp_path / "scan_vec_check"
    subprocess.run([COMPILER, "-O2", "-std=c++17", "-I" + os.path.join(ROOT, "csrc"), *BUILDS[build], CHECK,
                    "-o", str(exe)], check=True, capture_output=True)
    report = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    rows = re.findall(r"^(\w+) \[(\S+), (\S+)\] max_rel (\S+) specials_wrong (\d+)$", report, re.M)
    assert len(rows) == 5, report
    for name, lo, hi, err, wrong in rows:
        assert float(err) <= BOUNDS[name], f"{build}: {name} on [{lo}, {hi}]: max rel. error {err}\n{report}"
        assert wrong == "0", f"{build}: {name} gets IEEE ends wrong\n{report}"
    assert "transpose16 misplaced 0" in report, report
    assert "reduce16 wrong 0" in report, report
    decay = float(re.search(r"^decay .* max_rel (\S+)$", report, re.M).group(1))
    assert decay <= 2e-6, f"{build}: the scan's decay exp2(dt (A log2 e)): {decay}\n{report}"
