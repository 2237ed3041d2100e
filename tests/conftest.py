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

if getattr(tinyml, "__file__", None) is None:  # a namespace package: a folder, not the package
    raise ImportError(f"'import tinyml' found the folder {', '.join(tinyml.__path__)} instead of the "
                      "package: a clone named tinyml in the current directory shadows it. Run pytest from "
                      "inside the clone.")


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


# -- kernel coverage: which (kernel, backend) pairs each test dispatched, and the outcome --------
_kernel_calls: dict = {}  # (kernel, backend) -> set of test ids
_outcomes: dict = {}  # test id -> passed?
_current = {"test": None}


def _record_kernel(fn, name, backend):
    def recorded(*args, **kwargs):
        out = None
        try:
            out = fn(*args, **kwargs)
            return out
        finally:  # a kernel that raised ran too; one that returned NotImplemented declined (the next one ran)
            test = _current["test"]
            if test is not None and out is not NotImplemented:
                _kernel_calls.setdefault((name, backend), set()).add(test)

    recorded.__wrapped__ = fn
    return recorded


def pytest_sessionstart(session):
    tinyml.backends._wrappers.append(_record_kernel)
    tinyml.backends.clear_cache()


def pytest_runtest_setup(item):
    _current["test"] = item.nodeid


def pytest_runtest_logreport(report):
    if report.when == "call" or report.failed:
        _outcomes[report.nodeid] = _outcomes.get(report.nodeid, True) and report.passed


def pytest_sessionfinish(session):
    import json

    from tinyml.backends.matrix import STATUS_FILE, read_status

    path = STATUS_FILE  # beside the tinyml under test, whatever the cwd: python -m tinyml.backends reads it
    status = read_status(path)
    for (name, backend), tests in _kernel_calls.items():
        done = [t for t in tests if t in _outcomes]
        if done:
            passed = sum(_outcomes[t] for t in done)
            status.setdefault(name, {})[backend] = {"passed": passed, "failed": len(done) - passed}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(status, f, indent=1, sort_keys=True)
