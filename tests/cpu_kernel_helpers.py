"""Shared helpers for the tests that call C++ kernels directly (in tests/ops/test_<family>.py and
tests/optim/): the cpu and reference implementations of a kernel and a comparison with the
per-dtype 'reduction' tolerance (the C++ kernels sum in a different order and
use FMA and polynomial exp/erfc, so they agree with numpy to rounding, not bit for bit)."""
from __future__ import annotations

import numpy as np
import pytest

from tinyml import backends
from tinyml.testing import assert_close, tolerance

try:
    from tinyml import _C
except ImportError:  # pragma: no cover - extension not built
    _C = None

needs_C = pytest.mark.skipif(_C is None, reason="tinyml._C (the C++ kernels) is not built")
DTYPES = [np.float32, np.float64]


def impls(name: str):
    """(cpu adapter, numpy reference) of kernel `name`."""
    table = backends.implementations(name)
    return table["cpu"], table["reference"]


def close(actual, expected, dtype, msg: str = "") -> None:
    """Compare results (arrays, tuples, None) with the 'reduction' tolerance of `dtype`."""
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), msg
        for i, (a, e) in enumerate(zip(actual, expected)):
            close(a, e, dtype, f"{msg}[{i}]")
        return
    if expected is None:
        assert actual is None, f"{msg}: expected None"
        return
    assert actual.dtype == expected.dtype, f"{msg}: dtype {actual.dtype} vs {expected.dtype}"
    assert_close(actual, expected, kind="reduction", dtype=np.dtype(dtype), msg=msg)


def close_scaled(actual, expected, dtype) -> None:
    """Like close, for results with long sums (conv's dw over batch x positions) that cancel: the
    absolute tolerance grows with the largest entry (0.1 rtol of it), and shapes are checked."""
    actual = actual if isinstance(actual, tuple) else (actual,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(actual) == len(expected)
    for x, y in zip(actual, expected):
        if y is None:
            assert x is None
            continue
        assert x.shape == y.shape and x.dtype == y.dtype, (x.shape, y.shape, x.dtype, y.dtype)
        rtol, atol = tolerance(np.dtype(dtype).name, "reduction")
        scale = float(np.abs(y).max()) if y.size and y.dtype.kind == "f" else 0.0
        assert_close(x, y, rtol=rtol, atol=max(atol, 0.1 * rtol * scale))


def rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)
