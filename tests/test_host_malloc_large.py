"""tinyml/_host_malloc.py, arrays above glibc's 32 MiB mmap cap: with M_MMAP_MAX = 0 they come from
malloc's heap too, so an output of 48 MiB freed by one call serves the next one instead of being
mapped, faulted in and zero-filled again (gelu's 4096 x 3072 activations, cross_entropy's dlogits)."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt thresholds are glibc's")

# A kernel's pattern: a 48 MiB output allocated, written, freed, every call. Prints the tuning
# state and the page faults of calls 2-6 (call 1 maps the memory).
_LARGE_PATTERN = """
import json, resource, numpy as np, tinyml
from tinyml import _host_malloc
(tinyml.ones(4) + 1).sum()   # the first cpu kernel: tinyml tunes malloc here
x = np.ones(12 << 20, np.float32)
def call():
    y = np.empty_like(x)
    y[:] = x                  # every page written, as a kernel's output is
    del y
call()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    call()
print(json.dumps([_host_malloc.state, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before]))
"""


def _run(**env) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _LARGE_PATTERN], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    state, faults = json.loads(out.stdout.splitlines()[-1])
    return state, faults


@glibc_only
def test_arrays_above_the_mmap_cap_are_reused_too():
    state, faults = _run(TINYML_HOST_MALLOC="")
    assert state == "tuned"
    # 5 calls of 48 MiB: 61,440 pages (or 120 huge pages) if each came back fresh; reused, almost none
    assert faults < 100, faults
    default_state, default_faults = _run(TINYML_HOST_MALLOC="default")
    assert default_state == "disabled by TINYML_HOST_MALLOC=default"
    assert default_faults > max(100, 3 * faults), (default_faults, faults)
