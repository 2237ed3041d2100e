"""The cuda device: memory through the driver (or host emulation), copies, errors."""
import gc

import numpy as np
import pytest

import tinyml
from tinyml.testing import assert_close

pytestmark = pytest.mark.skipif(not tinyml.cuda.is_available(), reason="no cuda device or interpreter")


def test_roundtrip_all_dtypes():
    for dt in (tinyml.float32, tinyml.float64, tinyml.float16, tinyml.bfloat16, tinyml.int64, tinyml.int32,
               tinyml.bool):
        x = tinyml.tensor(np.arange(12).reshape(3, 4) % 3, dtype=dt)
        y = x.to("cuda")
        assert y.device == tinyml.device("cuda:0") and y.dtype is dt and y.is_cuda
        assert np.array_equal(y.cpu().numpy(), x.numpy())


def test_views_on_device_share_memory_and_copy_back_strided():
    x = tinyml.arange(24.0).reshape(2, 3, 4).cuda()
    t = x.permute(2, 0, 1)
    assert t.stride() == (1, 12, 4) and not t.is_contiguous()
    assert_close(t.cpu(), np.arange(24.0, dtype=np.float32).reshape(2, 3, 4).transpose(2, 0, 1))
    e = tinyml.tensor([1.0, 2.0]).cuda().expand(3, 2)
    assert e.stride() == (0, 1)
    assert_close(e.contiguous().cpu(), np.array([[1, 2]] * 3, dtype=np.float32))


def test_creation_on_device():
    assert_close(tinyml.zeros(2, 3, device="cuda").cpu(), np.zeros((2, 3), np.float32))
    assert_close(tinyml.full((4,), 2.5, device="cuda").cpu(), np.full(4, 2.5, np.float32))
    assert_close(tinyml.arange(5, device="cuda").cpu(), np.arange(5))
    tinyml.manual_seed(3)
    a = tinyml.randn(10, device="cuda")
    tinyml.manual_seed(3)
    assert_close(a.cpu(), tinyml.randn(10))  # one generator: the same values on every device


def test_caching_allocator_reuses_blocks_and_counts():
    # Triton's interpreter leaves reference cycles holding launch arguments; collect them so
    # that `del` frees a block as it does on a GPU.
    gc.collect()
    tinyml.cuda.empty_cache()
    base = tinyml.cuda.memory_allocated()
    x = tinyml.zeros(1000, device="cuda")  # 4000 bytes -> one 4096-byte block
    assert tinyml.cuda.memory_allocated() - base == 4096
    ptr = x._data.data_ptr()
    del x
    gc.collect()
    assert tinyml.cuda.memory_allocated() == base
    y = tinyml.ones(1000, device="cuda")
    assert y._data.data_ptr() == ptr  # the cached block came back
    tinyml.cuda.reset_peak_memory_stats()
    z = tinyml.ones(1 << 20, device="cuda")  # 4 MiB: a large size class
    assert tinyml.cuda.max_memory_allocated() - tinyml.cuda.memory_allocated() == 0
    del z
    gc.collect()
    assert tinyml.cuda.max_memory_allocated() - tinyml.cuda.memory_allocated() == 4 << 20
    tinyml.cuda.empty_cache()
    assert tinyml.cuda.memory_reserved() >= tinyml.cuda.memory_allocated()
    del y


def test_mixing_devices_names_both():
    a = tinyml.ones(3)
    b = tinyml.ones(3, device="cuda")
    with pytest.raises(RuntimeError, match="cpu and cuda:0"):
        a + b


def test_gradients_come_back_to_the_source_device():
    x = tinyml.randn(4, requires_grad=True)
    (x.cuda() * 3).sum().backward()
    assert x.grad.device == "cpu"
    assert_close(x.grad, np.full(4, 3.0, np.float32))


def test_events_time_in_milliseconds():
    start, end = tinyml.cuda.Event(), tinyml.cuda.Event()
    start.record()
    tinyml.ones(10, device="cuda").sum()
    end.record()
    assert end.elapsed_time(start) <= 0 <= start.elapsed_time(end)
