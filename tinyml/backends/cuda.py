"""The cuda device from scratch: the CUDA driver API through ctypes, and a caching allocator.

No PyTorch, no CuPy: `libcuda.so` is loaded with ctypes (as tinygrad does) and only the driver
API is used: cuInit, the primary context, cuMemAlloc/cuMemFree, cuMemcpy*, cuMemset, events.

Host emulation: with TRITON_INTERPRET=1 and no usable GPU, the same device is served from host
memory (numpy byte buffers), so every Triton kernel runs in Triton's interpreter on the same
code path; that is how CI tests the GPU backend. `emulated()` tells which mode is active.

The allocator keeps freed blocks by size class and reuses them (cudaMalloc is slow and
synchronising); `empty_cache()` returns them to the driver. Sizes round up to 512 bytes below
1 MiB and to 2 MiB above, so repeated shapes reuse blocks exactly.
"""
from __future__ import annotations

import ctypes
import os
from collections import defaultdict

import numpy as np

_SMALL, _LARGE = 512, 2 << 20


class CudaError(RuntimeError):
    pass


class _Driver:
    """The handful of CUDA driver calls tinyml needs, checked."""

    def __init__(self):
        self.lib = None
        for name in ("libcuda.so.1", "libcuda.so"):
            try:
                self.lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if self.lib is None:
            raise CudaError("the CUDA driver (libcuda.so) was not found: install an NVIDIA driver, or set "
                            "TRITON_INTERPRET=1 to emulate the cuda device on the host")
        self.check("cuInit", 0)
        count = ctypes.c_int()
        self.check("cuDeviceGetCount", ctypes.byref(count))
        if count.value == 0:
            raise CudaError("the CUDA driver reports no GPU")
        self.device_count = count.value
        self.device = ctypes.c_int()
        self.check("cuDeviceGet", ctypes.byref(self.device), 0)
        self.context = ctypes.c_void_p()
        self.check("cuDevicePrimaryCtxRetain", ctypes.byref(self.context), self.device)
        self.check("cuCtxSetCurrent", self.context)
        name = ctypes.create_string_buffer(256)
        self.check("cuDeviceGetName", name, 256, self.device)
        self.name = name.value.decode()

    def check(self, fn: str, *args) -> None:
        status = getattr(self.lib, fn)(*args)
        if status != 0:
            msg = ctypes.c_char_p()
            self.lib.cuGetErrorString(status, ctypes.byref(msg))
            text = msg.value.decode() if msg.value else "unknown error"
            raise CudaError(f"CUDA driver call {fn} failed with error {status}: {text}")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_uint64()
        self.check("cuMemAlloc_v2", ctypes.byref(ptr), ctypes.c_size_t(nbytes))
        return ptr.value

    def free(self, ptr: int) -> None:
        self.check("cuMemFree_v2", ctypes.c_uint64(ptr))

    def htod(self, dst: int, src: int, nbytes: int) -> None:
        self.check("cuMemcpyHtoD_v2", ctypes.c_uint64(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes))

    def dtoh(self, dst: int, src: int, nbytes: int) -> None:
        self.check("cuMemcpyDtoH_v2", ctypes.c_void_p(dst), ctypes.c_uint64(src), ctypes.c_size_t(nbytes))

    def dtod(self, dst: int, src: int, nbytes: int) -> None:
        self.check("cuMemcpyDtoD_v2", ctypes.c_uint64(dst), ctypes.c_uint64(src), ctypes.c_size_t(nbytes))

    def memset(self, dst: int, byte: int, nbytes: int) -> None:
        self.check("cuMemsetD8_v2", ctypes.c_uint64(dst), ctypes.c_ubyte(byte), ctypes.c_size_t(nbytes))

    def synchronize(self) -> None:
        self.check("cuCtxSynchronize")


class _HostMemory:
    """Host emulation of device memory for Triton's interpreter: buffers are numpy byte arrays."""

    name = "host emulation (TRITON_INTERPRET=1)"
    device_count = 1

    def __init__(self):
        self.buffers: dict[int, np.ndarray] = {}

    def malloc(self, nbytes: int) -> int:
        buf = np.empty(max(nbytes, 1), dtype=np.uint8)
        ptr = buf.ctypes.data
        self.buffers[ptr] = buf
        return ptr

    def free(self, ptr: int) -> None:
        self.buffers.pop(ptr, None)

    def htod(self, dst: int, src: int, nbytes: int) -> None:
        ctypes.memmove(dst, src, nbytes)

    dtoh = dtod = htod

    def memset(self, dst: int, byte: int, nbytes: int) -> None:
        ctypes.memset(dst, byte, nbytes)

    def synchronize(self) -> None:
        pass


_backend = None  # _Driver or _HostMemory once initialised


def emulated() -> bool:
    """True when the cuda device is emulated in host memory for Triton's interpreter."""
    return _get().__class__ is _HostMemory


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "") not in ("", "0")


def _get():
    global _backend
    if _backend is None:
        if _interpreting():
            try:
                _backend = _Driver()
            except CudaError:
                _backend = _HostMemory()
        else:
            _backend = _Driver()
    return _backend


def is_initialized() -> bool:
    return _backend is not None


def is_available() -> bool:
    """A GPU is usable through the driver, or TRITON_INTERPRET=1 emulates one."""
    try:
        _get()
        return True
    except CudaError:
        return False


def ensure_available() -> None:
    """Raise a plain CudaError saying why the cuda device cannot be used."""
    _get()


def device_name() -> str:
    return _get().name


class _Allocator:
    """Caching allocator: freed blocks wait in per-size lists for the next request of that size."""

    def __init__(self):
        self.pool: dict[int, list[int]] = defaultdict(list)
        self.allocated = 0
        self.peak = 0
        self.reserved = 0

    @staticmethod
    def round_size(nbytes: int) -> int:
        unit = _SMALL if nbytes < (1 << 20) else _LARGE
        return max(unit, (nbytes + unit - 1) // unit * unit)

    def malloc(self, nbytes: int) -> tuple[int, int]:
        size = self.round_size(nbytes)
        free = self.pool.get(size)
        if free:
            ptr = free.pop()
        else:
            try:
                ptr = _get().malloc(size)
            except CudaError:
                self.empty_cache()  # give cached blocks back and retry once
                ptr = _get().malloc(size)
            self.reserved += size
        self.allocated += size
        self.peak = max(self.peak, self.allocated)
        return ptr, size

    def free(self, ptr: int, size: int) -> None:
        self.allocated -= size
        self.pool[size].append(ptr)

    def empty_cache(self) -> None:
        backend = _get()
        for size, ptrs in self.pool.items():
            for ptr in ptrs:
                backend.free(ptr)
                self.reserved -= size
        self.pool.clear()


allocator = _Allocator()


class Block:
    """One allocation; returned to the allocator's cache when the last reference goes."""

    __slots__ = ("ptr", "size", "nbytes")

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        self.ptr, self.size = allocator.malloc(nbytes)

    def __del__(self):
        try:
            allocator.free(self.ptr, self.size)
        except Exception:  # interpreter shutdown
            pass


# -- copies ------------------------------------------------------------------------------------
def copy_host_to_device(dst_ptr: int, host: np.ndarray) -> None:
    host = np.require(host, requirements='C')
    if host.nbytes:
        _get().htod(dst_ptr, host.ctypes.data, host.nbytes)


def copy_device_to_host(host: np.ndarray, src_ptr: int) -> None:
    if host.nbytes:
        _get().dtoh(host.ctypes.data, src_ptr, host.nbytes)


def copy_device_to_device(dst_ptr: int, src_ptr: int, nbytes: int) -> None:
    if nbytes:
        _get().dtod(dst_ptr, src_ptr, nbytes)


def memset(ptr: int, byte: int, nbytes: int) -> None:
    if nbytes:
        _get().memset(ptr, byte, nbytes)


def synchronize() -> None:
    _get().synchronize()


# -- memory statistics (torch.cuda names) --------------------------------------------------------
def memory_allocated() -> int:
    return allocator.allocated


def max_memory_allocated() -> int:
    return allocator.peak


def memory_reserved() -> int:
    return allocator.reserved


def reset_peak_memory_stats() -> None:
    allocator.peak = allocator.allocated


def empty_cache() -> None:
    allocator.empty_cache()


class Event:
    """A timing event (cuEventRecord/ElapsedTime on a GPU; host clock under emulation)."""

    def __init__(self, enable_timing: bool = True):
        self._backend = _get()
        self._handle = None
        self._time = None
        if isinstance(self._backend, _Driver):
            handle = ctypes.c_void_p()
            self._backend.check("cuEventCreate", ctypes.byref(handle), 0)
            self._handle = handle

    def record(self) -> None:
        if self._handle is not None:
            self._backend.check("cuEventRecord", self._handle, None)
        else:
            import time

            self._time = time.perf_counter()

    def synchronize(self) -> None:
        if self._handle is not None:
            self._backend.check("cuEventSynchronize", self._handle)

    def elapsed_time(self, end: Event) -> float:
        """Milliseconds from this event to `end`."""
        if self._handle is not None:
            end.synchronize()
            ms = ctypes.c_float()
            self._backend.check("cuEventElapsedTime", ctypes.byref(ms), self._handle, end._handle)
            return ms.value
        return (end._time - self._time) * 1e3
