"""The cpu adapter keeps upsample taps per geometry (tinyml/backends/cpu/pool.py `_taps`): the cached
arrays must be the reference's interp_taps, per dtype and per scale, and read-only (every later
call with that geometry shares them)."""
import numpy as np
import pytest
from cpu_kernel_helpers import needs_C

from tinyml.backends.reference.pool import interp_taps


@needs_C
@pytest.mark.parametrize("mode,align", [("bilinear", False), ("bilinear", True), ("nearest", False),
                                        ("nearest-exact", False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cached_taps_are_the_reference_taps(mode, align, dtype):
    from tinyml.backends.cpu import pool as P
    for in_hw, out_hw, scales in [((5, 7), (11, 3), (None, None)), ((56, 56), (112, 112), (2.0, 2.0)),
                                  ((4, 6), (9, 13), (2.3, 2.2))]:
        a = P._taps(in_hw, out_hw, mode, align, scales, np.dtype(dtype))
        b = P._taps(list(in_hw), out_hw, mode, align, scales, dtype)  # same key: the same arrays
        assert all(x is y for x, y in zip(a, b))
        th = interp_taps(in_hw[0], out_hw[0], mode, align, scales[0], dtype)
        tw = interp_taps(in_hw[1], out_hw[1], mode, align, scales[1], dtype)
        for got, want in zip(a, [th[0], th[1], tw[0], tw[1], th[2], tw[2]]):
            assert got.dtype == want.dtype and np.array_equal(got, want)
            assert not got.flags.writeable
            with pytest.raises(ValueError):
                got[...] = 0


@needs_C
def test_cached_taps_differ_by_dtype_and_scale():
    from tinyml.backends.cpu import pool as P
    f32 = P._taps((3, 3), (7, 7), "bilinear", False, (None, None), np.float32)
    f64 = P._taps((3, 3), (7, 7), "bilinear", False, (None, None), np.float64)
    s = P._taps((3, 3), (7, 7), "bilinear", False, (2.5, 2.5), np.float32)
    assert f32[4].dtype == np.float32 and f64[4].dtype == np.float64
    assert not np.array_equal(f32[4], s[4])  # 1/scale, not in/out, sets the source positions
