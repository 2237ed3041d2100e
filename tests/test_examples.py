"""The custom-kernel example runs end to end (docs/custom_kernels.md walks through it).

One subprocess run of `examples/bias_gelu/bias_gelu.py --quick`: it builds the C++ kernel in a fresh
extension folder, checks the cpu implementations (and the Triton one where a GPU or Triton's
interpreter is available) against the numpy reference, and prints a benchmark line. It compiles a
C++ file, so there is exactly one run.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

import tinyml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "bias_gelu", "bias_gelu.py")
BENCH_LINE = re.compile(r"bias_gelu 256x512 forward\+backward: fused C\+\+ ([\d.]+) ms, tinyml x\+b then gelu "
                        r"([\d.]+) ms, PyTorch eager ([\d.]+) ms; torch/fused = ([\d.]+)$")


def _can_build() -> bool:
    try:
        import pybind11  # noqa: F401
    except ImportError:
        return False
    return bool(os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++"))


@pytest.mark.skipif(not _can_build(), reason="the example compiles C++: needs a C++ compiler and pybind11")
def test_bias_gelu_example_runs_end_to_end(tmp_path):
    pytest.importorskip("torch")  # the benchmark's peer
    # The test session's environment (TRITON_INTERPRET included, which tests/conftest.py sets on a
    # machine without a GPU), a fresh build folder, and tinyml importable from this checkout.
    env = dict(os.environ)
    env["TINYML_EXTENSIONS_DIR"] = str(tmp_path / "extensions")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, EXAMPLE, "--quick"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, f"the example failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    lines = proc.stdout.splitlines()

    built = glob.glob(str(tmp_path / "extensions" / "bias_gelu_ext-*" / "bias_gelu_ext*"))
    assert built, "the C++ kernel was not built into TINYML_EXTENSIONS_DIR"
    assert "bias_gelu on cpu: matches the reference forward and backward" in lines
    cuda_line = "bias_gelu on cuda: matches the reference forward and backward"
    if tinyml.cuda.is_available():  # a GPU, or the host emulation under TRITON_INTERPRET=1
        assert cuda_line in lines
    else:
        assert cuda_line not in lines

    bench = [m for m in map(BENCH_LINE.match, lines) if m]
    assert len(bench) == 1, f"no benchmark line in:\n{proc.stdout}"
    fused, composite, peer, ratio = map(float, bench[0].groups())
    assert min(fused, composite, peer) > 0
    assert ratio == pytest.approx(peer / fused, rel=0.05, abs=0.01)
