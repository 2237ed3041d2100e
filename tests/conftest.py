import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

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
