import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

# Without a GPU driver, the cuda device is emulated in host memory and Triton kernels run in
# Triton's interpreter (DESIGN.md); with one, the same tests run on the real GPU. The variable
# must be set before triton is imported.
if "TRITON_INTERPRET" not in os.environ:
    import ctypes.util

    if ctypes.util.find_library("cuda") is None:
        os.environ["TRITON_INTERPRET"] = "1"

import tinyml  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    tinyml.manual_seed(0)
    yield


@pytest.fixture(params=["reference", "cpu"])
def kernels(request):
    """Run a test once on the numpy reference kernels and once on the default cpu kernels."""
    with tinyml.backends.force_reference(request.param == "reference"):
        yield request.param


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """The devices an op runs on: cpu, and cuda (a real GPU, or emulated for Triton's interpreter)."""
    if request.param == "cuda" and not tinyml.cuda.is_available():
        pytest.skip("no cuda device and Triton's interpreter is not enabled")
    return request.param
