"""Creation kernels (ops/creation.py: empty, eye, linspace, arange, contiguous copies, storage
offsets) on every backend of the family (backend_device: the numpy reference, the cpu device's
kernels, the Triton kernels)."""
import numpy as np
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml

backend_device = backend_device_fixture()


def test_creation_kernels_on_every_backend(backend_device):
    check_op([(3, 4)], lambda x: x.T.contiguous() * 2, device=backend_device)
    x = tinyml.arange(12, device=backend_device).reshape(3, 4)
    assert x[1:].storage_offset() == 4
    assert tinyml.empty(2, 3, device=backend_device).shape == (2, 3)
    np.testing.assert_array_equal(tinyml.eye(3, 4, device=backend_device).cpu().numpy(),
                                  np.eye(3, 4, dtype=np.float32))
    np.testing.assert_allclose(tinyml.linspace(0, 1, 5, device=backend_device).cpu().numpy(),
                               np.linspace(0, 1, 5), rtol=1e-6)
