"""The device fixture of the kernel-family tests: each tests/ops/test_<family>.py that runs its
kernels on every backend binds it with `backend_device = backend_device_fixture()` (a conftest.py
here would take the module name `conftest` from tests/conftest.py, which tests look up)."""
import pytest

import tinyml


def backend_device_fixture():
    @pytest.fixture(params=["reference", "cpu", "cuda"])
    def backend_device(request):
        """Run a kernel test once per backend of its family: the numpy reference and the C++ kernels
        on the cpu device, the Triton kernels on cuda (a GPU, or Triton's interpreter). Yields the
        device to put the tensors on."""
        if request.param == "cuda" and not tinyml.cuda.is_available():
            pytest.skip("no cuda device and Triton's interpreter is not enabled")
        with tinyml.backends.force_reference(request.param == "reference"):
            yield "cuda" if request.param == "cuda" else "cpu"

    return backend_device
