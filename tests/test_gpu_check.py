"""bench/gpu_check.sh, the one-call GPU check: its control flow without a GPU (the real run needs one)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(*args, env_path):
    env = {**os.environ, "PATH": env_path}
    return subprocess.run([shutil.which("bash"), str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_without_a_gpu_it_says_so_and_runs_nothing(tmp_path):
    # a PATH with the basic tools and python but no nvidia-smi
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "date", "mkdir", "git"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    (bin_dir / "python").symlink_to(sys.executable)
    out = tmp_path / "out"
    result = _run(str(out), env_path=str(bin_dir))
    assert result.returncode == 3, result.stderr
    assert "no GPU present" in result.stderr
    assert not out.exists()  # nothing was built, run or written


def test_steps_fit_in_one_eight_minute_device_call():
    result = _run("--dry-run", env_path=os.environ["PATH"])
    assert result.returncode == 0, result.stderr
    steps = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert list(steps) == ["build", "device", "tests", "gpu_kernels", "gpt_gpu"]
    limits = [int(rest.split("s:", 1)[0]) for rest in steps.values()]
    assert sum(limits) <= 480, limits
    assert "bench/gpu_kernels.py" in steps["gpu_kernels"] and "bench/gpt_gpu.py" in steps["gpt_gpu"]
    assert "-k cuda" in steps["tests"] and "tests/distributed/test_nccl.py" in steps["tests"]  # nccl on cuda
