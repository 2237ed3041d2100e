"""The blocking all_reduce called from C (csrc/distributed.cpp), past mpi4py's Python layer.

A training loop's gradient allreduce of a small bucket costs more in Python than in MPI: mpi4py's
`comm.Allreduce` spends about 0.35 us per call exporting the buffer and looking up its datatype, and
tinyml's wrapper around it twice that. `tinyml._C.distributed_mpi_all_reduce(array, version, op)`
takes the numpy array, checks its fields, releases the GIL and calls the MPI library's
MPI_Allreduce through a function pointer found here once per process group.

Only the ABI this module can check is served: MPICH's (MPICH, and what mpi4py loads as its "mpich"
ABI), where handles are 32-bit ints, MPI_IN_PLACE is (void *)-1 and the library is libmpi.so.12;
the predefined handles mpi4py reports must equal mpich's constants. Anything else (Open MPI, the
MPI-5 standard ABI, a missing tinyml._C, TINYML_MPI_NATIVE=0) leaves `enable` returning None and
collectives.py calling mpi4py instead.
"""
from __future__ import annotations

import ctypes
import os
import sys

import numpy as np

# MPICH's predefined handles (mpi.h), a check that the handles mpi4py reports are MPICH-ABI ints
_MPICH_FLOAT, _MPICH_SUM = 0x4C00040A, 0x58000003
_MPICH_IN_PLACE = -1
_LIBMPI = "libmpi.so.12"


def mpich_abi(MPI) -> bool:
    """Whether mpi4py runs on an MPICH-ABI library (MPI.Get_library_version() names MPICH and the
    predefined handles are MPICH's ints)."""
    if sys.platform != "linux" or not MPI.Get_library_version().startswith("MPICH"):
        return False
    abi = getattr(getattr(sys.modules.get("mpi4py._mpiabi"), "_get_mpiabi", None), "mpiabi", None)
    if abi not in (None, "mpich"):
        return False
    return MPI.FLOAT.handle == _MPICH_FLOAT and MPI.SUM.handle == _MPICH_SUM


def _int32_handle(handle: int, what: str) -> int:
    """An MPICH handle (a C int) as mpi4py reports it, sign-extended to 64 bits or not, as its 32 bits."""
    if not (-2**31 <= handle < 2**32 or 2**64 - 2**31 <= handle < 2**64):
        raise ValueError(f"native_mpi: the {what} handle {handle:#x} is not an MPICH (32-bit) handle")
    return handle & 0xFFFFFFFF


def _library_functions() -> tuple[int, int] | None:
    """The addresses of MPI_Allreduce and MPI_Error_string in the libmpi mpi4py loaded (RTLD_NOLOAD:
    only a library already in the process)."""
    try:
        lib = ctypes.CDLL(_LIBMPI, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        allreduce, error_string = lib.MPI_Allreduce, lib.MPI_Error_string
    except (OSError, AttributeError):
        return None
    return (ctypes.cast(allreduce, ctypes.c_void_p).value, ctypes.cast(error_string, ctypes.c_void_p).value)


def native_module():
    """tinyml._C when it has the binding (it is absent while the extension is unbuilt or stale)."""
    from ..backends.cpu import _C  # lazy: loading the extension sets OpenMP up (backends/cpu/__init__.py)

    return _C if _C is not None and hasattr(_C, "distributed_mpi_all_reduce") else None


def enable(MPI, comm, world_size: int, ops: dict):
    """Point the C call at `comm`; its function (array, version, op) -> bool, or None when this
    MPI or build is not one it serves. `ops`: ReduceOp value -> MPI.Op (AVG is SUM, then a division)."""
    if os.environ.get("TINYML_MPI_NATIVE", "1") == "0" or not mpich_abi(MPI):
        return None
    _C = native_module()
    functions = _library_functions()
    if _C is None or functions is None:
        return None
    # numpy's C types by character, each with the MPI type of its size ("l" and "q" are both int64 here)
    types = [(np.dtype(c), _int32_handle(datatype.handle, "datatype")) for c, datatype in (
        ("f", MPI.FLOAT), ("d", MPI.DOUBLE), ("i", MPI.INT32_T), ("I", MPI.UINT32_T), ("l", MPI.INT64_T),
        ("L", MPI.UINT64_T), ("q", MPI.INT64_T), ("Q", MPI.UINT64_T))
        if np.dtype(c).itemsize == datatype.Get_size()]
    op_list = [(name, _int32_handle(mpi_op.handle, "op"), name == "avg") for name, mpi_op in ops.items()]
    comm_handle = _int32_handle(comm.handle, "communicator")
    allreduce, error_string = functions
    _C.distributed_mpi_open(allreduce, error_string, _MPICH_IN_PLACE, comm_handle, world_size, types, op_list,
                            np.ndarray)
    return _C.distributed_mpi_all_reduce


def disable() -> None:
    """Disable the C call (the group was destroyed or broke); it declines every call from now on."""
    _C = native_module()
    if _C is not None:
        _C.distributed_mpi_close()


def busy():
    """The C call in flight, for the watchdog: (sequence number, op, array), or None."""
    _C = native_module()
    return None if _C is None else _C.distributed_mpi_busy()
