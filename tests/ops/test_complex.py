"""The complex kernel family's numpy references (tinyml/backends/reference/complex.py), the only
backend of complex data: views keep storage and strides, results keep the precision. The ops'
forward and backward against torch are in tests/test_complex_ops.py."""
import numpy as np
import pytest

from tinyml.backends.reference import complex as kernels

C64, C128 = np.complex64, np.complex128


def _z(dtype=C128, shape=(3, 4)):
    rng = np.random.default_rng(0)
    return np.asarray(rng.standard_normal(shape) + 1j * rng.standard_normal(shape), dtype=dtype)


@pytest.mark.parametrize("dtype,real", [(C64, np.float32), (C128, np.float64)])
def test_parts_are_views_of_the_real_dtype(dtype, real):
    z = _z(dtype)[:, ::2]  # strided
    for kernel, want in ((kernels.real, z.real), (kernels.imag, z.imag)):
        out = kernel(z)
        assert out.dtype == real and np.shares_memory(out, z) and np.array_equal(out, want)


@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 1, 3)])
def test_view_as_real_and_back(shape):
    z = _z(C64, shape)
    r = kernels.view_as_real(z)
    assert r.shape == shape + (2,) and r.dtype == np.float32 and np.shares_memory(r, z)
    np.testing.assert_array_equal(r[..., 0], z.real)
    np.testing.assert_array_equal(r[..., 1], z.imag)
    back = kernels.view_as_complex(np.ascontiguousarray(r))
    assert back.shape == shape and back.dtype == C64
    np.testing.assert_array_equal(back, z)


def test_view_as_real_of_a_strided_view_and_a_read_only_array():
    z = _z()[::2, 1:]
    r = kernels.view_as_real(z)
    assert r.strides == z.strides + (8,) and np.shares_memory(r, z)
    np.testing.assert_array_equal(r[..., 1], z.imag)
    frozen = _z()
    frozen.flags.writeable = False
    assert not kernels.view_as_real(frozen).flags.writeable


def test_conj_complex_and_angle():
    z = _z()
    np.testing.assert_array_equal(kernels.conj(z), np.conj(z))
    x = np.arange(3.0)
    assert kernels.conj(x) is x
    re, im = np.arange(3, dtype=np.float32), np.ones(3, dtype=np.float32)
    c = kernels.complex(re, im)
    assert c.dtype == C64 and np.array_equal(c, re + 1j * im)
    assert kernels.complex(re.astype(np.float64), im.astype(np.float64)).dtype == C128
    a = kernels.angle(z.astype(C64))
    assert a.dtype == np.float32 and np.allclose(a, np.arctan2(z.imag, z.real), atol=1e-6)
    real_angles = kernels.angle(np.array([-2.0, 0.0, 3.0, np.nan]))
    np.testing.assert_array_equal(real_angles, [np.pi, 0.0, 0.0, np.nan])
