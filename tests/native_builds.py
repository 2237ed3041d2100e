"""What the tests that compile a csrc header on their own (one program per instruction set: the
runtime-dispatched clones, AVX2 / x86-64-v3, baseline x86-64) share: the repository root, the
compiler the extension is built with on Linux (setup.py), whether the CPU can run a build, and the
skip marker for machines without g++ on x86-64."""
import os
import platform
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPILER = shutil.which("g++")
needs_native_x86 = pytest.mark.skipif(COMPILER is None or platform.machine() != "x86_64",
                                      reason="needs g++ on x86-64")


def cpu_has(*flags: str) -> bool:
    """True when /proc/cpuinfo lists every one of flags (False where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            have = set(next(line for line in f if line.startswith("flags")).split())
    except (OSError, StopIteration):
        return False
    return all(flag in have for flag in flags)
