"""Launching a worker script on 2 MPI ranks from a test (the tests of tests/distributed)."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
MPIEXEC = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
                               reason="needs mpi4py and mpiexec: pip install mpi4py mpich")


def mpirun(script: str, *args: str, timeout: float, flags=(), env=None) -> subprocess.CompletedProcess:
    """`mpiexec -n 2 python <script> <args>` on one thread per rank (2 ranks on 2 cores); `env`: more
    environment variables."""
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([MPIEXEC, *flags, "-n", "2", sys.executable, str(HERE / script), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)
