"""NCCL through ctypes: libnccl.so.2 (from the nvidia-nccl-cu12 wheel), a communicator, a side stream.

    pip install nvidia-nccl-cu12          # or: pip install 'tinyml[nccl]'
    mpiexec -n 2 python train.py          # with dist.init_process_group(backend="nccl")

No PyTorch, no CuPy, no compiled glue: the library is loaded with ctypes and its C API called
directly, as backends/cuda.py does for the CUDA driver. The library is looked for at
$TINYML_NCCL_LIBRARY, then in the nvidia-nccl-cu12 wheel (site-packages/nvidia/nccl/lib), then on
the loader's path. `version()` and `get_unique_id()` need no GPU; a communicator does.

Stream order, as torch.distributed's NCCL backend: a collective runs on the communicator's own
non-blocking stream, after an event recorded on the default stream (where tinyml's Triton kernels
run) so that it reads finished inputs; `Work.wait()` makes the default stream wait for the
collective's done event, so later kernels see its result without blocking the host.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import time

from ..backends import cuda

INSTALL_HINT = "pip install nvidia-nccl-cu12 (or pip install 'tinyml[nccl]')"
UNIQUE_ID_BYTES = 128  # NCCL_UNIQUE_ID_BYTES in nccl.h

# ncclDataType_t (nccl.h). bool travels as uint8 (as torch.distributed sends it), with its own op map.
NCCL_DTYPES = {"int8": 0, "uint8": 1, "bool": 1, "int32": 2, "uint32": 3, "int64": 4, "uint64": 5,
               "float16": 6, "float32": 7, "float64": 8, "bfloat16": 9}
# ncclRedOp_t (nccl.h), by ReduceOp value; ncclAvg needs NCCL >= 2.10
NCCL_OPS = {"sum": 0, "product": 1, "max": 2, "min": 3, "avg": 4}
# on bool: sum is logical or (max), product logical and (min), as torch.distributed does
BOOL_OPS = {"sum": "max", "max": "max", "product": "min", "min": "min"}

_CUDA_ERROR_NOT_READY = 600
_CU_STREAM_NON_BLOCKING = 1
_CU_EVENT_DISABLE_TIMING = 2
_NCCL_IN_PROGRESS = 7


class NcclError(RuntimeError):
    pass


class UniqueId(ctypes.Structure):
    _fields_ = [("internal", ctypes.c_char * UNIQUE_ID_BYTES)]


def library_path() -> str:
    """Where libnccl.so.2 is taken from: $TINYML_NCCL_LIBRARY, the nvidia-nccl-cu12 wheel, or the
    loader's search path (the bare name)."""
    given = os.environ.get("TINYML_NCCL_LIBRARY")
    if given:
        return given
    try:
        spec = importlib.util.find_spec("nvidia.nccl")
    except ImportError:  # no `nvidia` namespace package at all
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "lib", "libnccl.so.2")
        if os.path.exists(path):
            return path
    return "libnccl.so.2"


_P, _I, _SZ = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
_SIGNATURES = {  # name: argtypes (every function returns ncclResult_t, an int)
    "ncclGetVersion": [ctypes.POINTER(_I)],
    "ncclGetUniqueId": [ctypes.POINTER(UniqueId)],
    "ncclCommInitRank": [ctypes.POINTER(_P), _I, UniqueId, _I],
    "ncclCommDestroy": [_P],
    "ncclCommAbort": [_P],
    "ncclCommGetAsyncError": [_P, ctypes.POINTER(_I)],
    "ncclAllReduce": [_P, _P, _SZ, _I, _I, _P, _P],
    "ncclBroadcast": [_P, _P, _SZ, _I, _I, _P, _P],
    "ncclAllGather": [_P, _P, _SZ, _I, _P, _P],
    "ncclReduceScatter": [_P, _P, _SZ, _I, _I, _P, _P],
}


class Library:
    """libnccl.so.2 with the signatures tinyml calls; `call` raises NcclError on failure."""

    def __init__(self, path: str | None = None):
        self.path = path or library_path()
        try:
            self.lib = ctypes.CDLL(self.path)
        except OSError as exc:
            raise NcclError(f"the nccl backend needs NCCL's libnccl.so.2, which could not be loaded from "
                            f"{self.path!r} ({exc}); install it with `{INSTALL_HINT}`, or point "
                            "TINYML_NCCL_LIBRARY at a libnccl.so.2") from exc
        for name, argtypes in _SIGNATURES.items():
            fn = getattr(self.lib, name)
            fn.argtypes, fn.restype = argtypes, ctypes.c_int
        self.lib.ncclGetErrorString.argtypes, self.lib.ncclGetErrorString.restype = [_I], ctypes.c_char_p
        self.lib.ncclGetLastError.argtypes, self.lib.ncclGetLastError.restype = [_P], ctypes.c_char_p

    def error_string(self, status: int) -> str:
        return (self.lib.ncclGetErrorString(status) or b"unknown NCCL error").decode()

    def call(self, name: str, *args, comm=None) -> None:
        status = getattr(self.lib, name)(*args)
        if status != 0:
            detail = (self.lib.ncclGetLastError(comm) or b"").decode()
            raise NcclError(f"NCCL call {name} failed with error {status}: {self.error_string(status)}"
                            + (f" ({detail})" if detail else ""))


_library: Library | None = None


def library() -> Library:
    """The NCCL library, loaded on first use."""
    global _library
    if _library is None:
        _library = Library()
    return _library


def is_available() -> bool:
    """True when libnccl.so.2 loads (a GPU is needed only to build a communicator)."""
    try:
        library()
    except NcclError:
        return False
    return True


def version() -> tuple[int, int, int]:
    """NCCL's version, e.g. (2, 21, 5) (torch.cuda.nccl.version()); code = major*10000 + minor*100
    + patch since NCCL 2.9, major*1000 + minor*100 + patch before."""
    code = ctypes.c_int()
    library().call("ncclGetVersion", ctypes.byref(code))
    v = code.value
    if v >= 10000:
        return v // 10000, v % 10000 // 100, v % 100
    return v // 1000, v % 1000 // 100, v % 100


def get_unique_id() -> bytes:
    """A fresh ncclUniqueId (128 bytes): rank 0 makes it, every rank passes it to Communicator."""
    uid = UniqueId()
    library().call("ncclGetUniqueId", ctypes.byref(uid))
    return ctypes.string_at(ctypes.addressof(uid), UNIQUE_ID_BYTES)


def nccl_dtype(dtype, what: str) -> int:
    """The ncclDataType_t of a numpy dtype (bool as uint8); a ValueError naming the supported ones."""
    code = NCCL_DTYPES.get(dtype.name)
    if code is None:
        raise ValueError(f"{what}: dtype {dtype.name} is not supported by the nccl backend; supported: "
                         f"{', '.join(sorted(NCCL_DTYPES))}")
    return code


def nccl_op(op, dtype, what: str) -> int:
    """The ncclRedOp_t of a ReduceOp for a numpy dtype (AVG: floating only; bool: or/and)."""
    if op not in NCCL_OPS:
        raise ValueError(f"{what}: unknown reduce op {op!r}; expected one of ReduceOp.SUM, AVG, PRODUCT, "
                         "MIN, MAX")
    if op == "avg" and dtype.kind not in "fV":  # V: bfloat16 (ml_dtypes)
        raise RuntimeError(f"{what}: ReduceOp.AVG needs a floating dtype, got {dtype.name}")
    if dtype.name == "bool":
        op = BOOL_OPS[op]
    return NCCL_OPS[op]


def require_gpu() -> None:
    """A NcclError unless tinyml's cuda device is a real GPU (NCCL has no host emulation)."""
    try:
        cuda.ensure_available()
    except cuda.CudaError as exc:
        raise NcclError(f"the nccl backend needs an NVIDIA GPU: {exc}") from exc
    if cuda.emulated():
        raise NcclError("the nccl backend needs an NVIDIA GPU; tinyml's cuda device is emulated in host "
                        "memory here (TRITON_INTERPRET=1 without a driver). Use backend='mpi' on cpu tensors")


class _Driver:
    """The CUDA driver calls for streams and events (libcuda through tinyml's cuda backend)."""

    def __init__(self):
        require_gpu()
        self.cu = cuda._get()

    def stream(self) -> ctypes.c_void_p:
        handle = ctypes.c_void_p()
        self.cu.check("cuStreamCreate", ctypes.byref(handle), ctypes.c_uint(_CU_STREAM_NON_BLOCKING))
        return handle

    def event(self) -> ctypes.c_void_p:
        handle = ctypes.c_void_p()
        self.cu.check("cuEventCreate", ctypes.byref(handle), ctypes.c_uint(_CU_EVENT_DISABLE_TIMING))
        return handle

    def record(self, event, stream) -> None:
        self.cu.check("cuEventRecord", event, stream)

    def wait(self, stream, event) -> None:
        self.cu.check("cuStreamWaitEvent", stream, event, ctypes.c_uint(0))

    def query(self, event) -> bool:
        status = self.cu.lib.cuEventQuery(event)
        if status not in (0, _CUDA_ERROR_NOT_READY):
            self.cu.check("cuEventQuery", event)  # raises with the driver's message
        return status == 0


DEFAULT_STREAM = None  # the legacy default stream, where tinyml's Triton kernels are launched


class Communicator:
    """One rank of an NCCL communicator (ncclCommInitRank over a unique id every rank shares),
    with a non-blocking side stream for its collectives."""

    def __init__(self, rank: int, size: int, unique_id: bytes):
        if len(unique_id) != UNIQUE_ID_BYTES:
            raise ValueError(f"Communicator: unique_id has {len(unique_id)} bytes; an ncclUniqueId has "
                             f"{UNIQUE_ID_BYTES}")
        if not 0 <= rank < size:
            raise ValueError(f"Communicator: rank {rank} is not in 0..{size - 1} (size {size})")
        self.lib = library()
        self.driver = _Driver()
        self.rank, self.size = rank, size
        uid = UniqueId.from_buffer_copy(unique_id)
        handle = ctypes.c_void_p()
        try:
            self.lib.call("ncclCommInitRank", ctypes.byref(handle), size, uid, rank)
        except NcclError as exc:
            raise NcclError(f"rank {rank}/{size}: {exc}. Each rank needs a GPU of its own (ranks on one node "
                            "pick theirs through CUDA_VISIBLE_DEVICES, which init_process_group sets before "
                            "the first cuda call)") from exc
        self.comm = handle
        self.stream = self.driver.stream()

    # -- launching: every collective is ordered after the default stream's work so far ----------
    def _launch(self, name: str, *args) -> ctypes.c_void_p:
        if self.comm is None:
            raise NcclError("the NCCL communicator has been destroyed")
        ready, done = self.driver.event(), self.driver.event()
        self.driver.record(ready, DEFAULT_STREAM)
        self.driver.wait(self.stream, ready)
        self.lib.call(name, *args, self.comm, self.stream, comm=self.comm)
        self.driver.record(done, self.stream)
        self.driver.cu.check("cuEventDestroy_v2", ready)  # released once recorded work completes
        return done

    def all_reduce(self, send: int, recv: int, count: int, dtype: int, op: int):
        return self._launch("ncclAllReduce", send, recv, count, dtype, op)

    def broadcast(self, send: int, recv: int, count: int, dtype: int, root: int):
        return self._launch("ncclBroadcast", send, recv, count, dtype, root)

    def all_gather(self, send: int, recv: int, send_count: int, dtype: int):
        return self._launch("ncclAllGather", send, recv, send_count, dtype)

    def reduce_scatter(self, send: int, recv: int, recv_count: int, dtype: int, op: int):
        return self._launch("ncclReduceScatter", send, recv, recv_count, dtype, op)

    # -- completion ----------------------------------------------------------------------------
    def stream_wait(self, done) -> None:
        """The default stream waits for `done` (no host block); the event is then released."""
        self.driver.wait(DEFAULT_STREAM, done)
        self.driver.cu.check("cuEventDestroy_v2", done)

    def query(self, done) -> bool:
        return self.driver.query(done)

    def synchronize(self, timeout_s: float, what: str) -> None:
        """Block the host until the side stream's work is done; after `timeout_s`, or on an
        asynchronous NCCL error (a peer died), abort the communicator and raise."""
        done = self.driver.event()
        self.driver.record(done, self.stream)
        start, spins = time.perf_counter(), 0
        try:
            while not self.driver.query(done):
                spins += 1
                self.check_async_error(what)
                if time.perf_counter() - start > timeout_s:
                    self.abort()
                    raise NcclError(f"rank {self.rank}/{self.size}: {what} did not complete within "
                                    f"{timeout_s:g} s; a peer rank has probably died or is stuck; the NCCL "
                                    "communicator was aborted")
                time.sleep(0 if spins < 1000 else 1e-4)
        finally:
            self.driver.cu.lib.cuEventDestroy_v2(done)

    def check_async_error(self, what: str) -> None:
        if self.comm is None:
            return
        status = ctypes.c_int()
        self.lib.call("ncclCommGetAsyncError", self.comm, ctypes.byref(status), comm=self.comm)
        if status.value not in (0, _NCCL_IN_PROGRESS):
            message = self.lib.error_string(status.value)
            self.abort()
            raise NcclError(f"rank {self.rank}/{self.size}: {what} failed: {message}; the NCCL communicator "
                            "was aborted")

    def abort(self) -> None:
        if self.comm is not None:
            comm, self.comm = self.comm, None
            self.lib.lib.ncclCommAbort(comm)

    def destroy(self) -> None:
        if self.comm is not None:
            comm, self.comm = self.comm, None
            self.lib.call("ncclCommDestroy", comm)
            self.driver.cu.check("cuStreamDestroy_v2", self.stream)
