"""tinyml/_host_malloc.py: the first cpu kernel raises glibc malloc's mmap and trim thresholds, so
buffers a step frees are reused by the next step instead of being faulted in again."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

import tinyml
from tinyml import _host_malloc

glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt thresholds are glibc's")

# A training step's pattern: several multi-MB arrays live at once, all freed, then allocated
# again. Prints the tuning state and the page faults of rounds 2-10 (round 1 maps the memory).
_STEP_PATTERN = """
import json, resource, numpy as np, tinyml
from tinyml import _host_malloc
(tinyml.ones(4) + 1).sum()   # the first cpu kernel: tinyml tunes malloc here
def round_():
    live = [np.ones(1 << 19, np.float32) for _ in range(8)]   # 8 arrays of 2 MiB, pages touched
    del live
round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(9):
    round_()
print(json.dumps([_host_malloc.state, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before]))
"""


def _run_pattern(**env) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _STEP_PATTERN], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    state, faults = json.loads(out.stdout.splitlines()[-1])
    return state, faults


@glibc_only
def test_first_cpu_kernel_tunes_malloc_and_freed_buffers_are_reused():
    state, faults = _run_pattern(TINYML_HOST_MALLOC="")
    assert state == "tuned"
    # 9 rounds of 16 MiB = 36,864 pages if every buffer came back fresh; reused, almost none
    assert faults < 2000, faults
    default_state, default_faults = _run_pattern(TINYML_HOST_MALLOC="default")
    assert default_state == "disabled by TINYML_HOST_MALLOC=default"
    assert default_faults > 3 * faults, (default_faults, faults)


def test_state_is_recorded_once_cpu_kernels_ran():
    (tinyml.ones(2) * 2).sum()
    assert _host_malloc.state in ("tuned", "disabled by TINYML_HOST_MALLOC=default", "not glibc",
                                  "mallopt refused")
    assert _host_malloc.tune_host_malloc() == _host_malloc.state  # idempotent: one decision per process


@glibc_only
def test_release_host_memory_gives_freed_heap_back():
    import numpy as np

    (tinyml.ones(2) + 1).sum()
    if _host_malloc.state != "tuned":
        pytest.skip(f"malloc not tuned in this process ({_host_malloc.state})")
    live = [np.ones(1 << 19, np.float32) for _ in range(16)]  # 32 MiB of heap, kept when freed
    del live
    assert tinyml.backends.release_host_memory() is True
