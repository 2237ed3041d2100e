"""The nccl backend: what runs without a GPU (library, version, unique id, the dtype/op maps against
nccl.h, every collective's ctypes signature, errors), and the collectives on real GPUs (the
`cuda` tests: skipped without one; bench/gpu_check.sh runs them when a GPU is lent)."""
import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mpi_launch_helpers import MPIEXEC, needs_mpi

import tinyml
from tinyml.distributed import ReduceOp, nccl, nccl_collectives

HERE = Path(__file__).parent
needs_nccl = pytest.mark.skipif(not nccl.is_available(),
                                reason=f"libnccl.so.2 not found: {nccl.INSTALL_HINT}")


def _gpu_count() -> int:
    """Real GPUs tinyml can drive (0 under host emulation)."""
    if not tinyml.cuda.is_available() or tinyml.cuda.emulated():
        return 0
    count = ctypes.c_int()
    from tinyml.backends import cuda
    cuda._get().check("cuDeviceGetCount", ctypes.byref(count))
    return count.value


@pytest.fixture
def gpus():
    n = _gpu_count()
    if n == 0 or not nccl.is_available():
        pytest.skip("needs an NVIDIA GPU and libnccl.so.2 (nvidia-nccl-cu12)")
    return n


def _header_enum(text: str, enum: str) -> dict:
    body = re.search(r"typedef enum \{([^}]*)\}\s*" + enum + ";", text).group(1)
    return {name: int(value) for name, value in re.findall(r"(nccl\w+)\s*=\s*(\d+)", body)}


@needs_nccl
def test_library_loads_and_reports_version_and_unique_ids():
    major, minor, patch = nccl.version()
    assert major == 2 and minor >= 10, (major, minor, patch)  # 2.10: ncclAvg
    a, b = nccl.get_unique_id(), nccl.get_unique_id()
    assert len(a) == nccl.UNIQUE_ID_BYTES == 128 and a != b


@needs_nccl
def test_dtype_and_op_maps_match_nccl_h():
    header = Path(nccl.library_path()).parents[1] / "include" / "nccl.h"
    if not header.exists():
        pytest.skip(f"no nccl.h beside {nccl.library_path()}")
    text = header.read_text()
    dtypes, ops = _header_enum(text, "ncclDataType_t"), _header_enum(text, "ncclRedOp_t")
    names = {"int8": "ncclInt8", "uint8": "ncclUint8", "bool": "ncclUint8", "int32": "ncclInt32",
             "uint32": "ncclUint32", "int64": "ncclInt64", "uint64": "ncclUint64", "float16": "ncclFloat16",
             "float32": "ncclFloat32", "float64": "ncclFloat64", "bfloat16": "ncclBfloat16"}
    assert {k: dtypes[v] for k, v in names.items()} == nccl.NCCL_DTYPES
    assert {k: ops["ncclProd" if k == "product" else "nccl" + k.capitalize()] for k in nccl.NCCL_OPS} == \
        nccl.NCCL_OPS


def test_op_choice_per_dtype_and_its_errors():
    f32, i32, b = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.bool_)
    assert nccl.nccl_op(ReduceOp.AVG, f32, "all_reduce") == nccl.NCCL_OPS["avg"]
    assert nccl.nccl_op(ReduceOp.SUM, b, "all_reduce") == nccl.NCCL_OPS["max"]  # logical or
    assert nccl.nccl_op(ReduceOp.PRODUCT, b, "all_reduce") == nccl.NCCL_OPS["min"]  # logical and
    with pytest.raises(RuntimeError, match="AVG needs a floating dtype, got int32"):
        nccl.nccl_op(ReduceOp.AVG, i32, "all_reduce")
    with pytest.raises(ValueError, match="unknown reduce op 'mean'"):
        nccl.nccl_op("mean", f32, "all_reduce")
    with pytest.raises(ValueError, match="dtype int16 is not supported by the nccl backend; supported: bf"):
        nccl.nccl_dtype(np.dtype(np.int16), "all_reduce")


@needs_nccl
@pytest.mark.parametrize("name, args", [
    ("ncclAllReduce", (None, None, 4, 7, 0)), ("ncclBroadcast", (None, None, 4, 7, 0)),
    ("ncclAllGather", (None, None, 4, 7)), ("ncclReduceScatter", (None, None, 4, 7, 0))])
def test_every_collective_reaches_nccl_through_its_signature(name, args):
    # a NULL communicator: NCCL checks its arguments and answers "invalid argument", no GPU touched
    with pytest.raises(nccl.NcclError, match=rf"NCCL call {name} failed with error 4: invalid argument.*NUL"):
        nccl.library().call(name, *args, None, None)


def test_missing_library_names_the_pip_command(tmp_path):
    with pytest.raises(nccl.NcclError, match=r"could not be loaded from .*nope.*pip install nvidia-nccl"):
        nccl.Library(str(tmp_path / "nope" / "libnccl.so.2"))


def test_library_path_prefers_the_environment(monkeypatch):
    monkeypatch.setenv("TINYML_NCCL_LIBRARY", "/opt/nccl/lib/libnccl.so.2")
    assert nccl.library_path() == "/opt/nccl/lib/libnccl.so.2"


@needs_nccl
def test_communicator_without_a_gpu_says_so():
    if _gpu_count():
        pytest.skip("a GPU is present")
    with pytest.raises(nccl.NcclError, match="the nccl backend needs an NVIDIA GPU"):
        nccl.Communicator(0, 1, nccl.get_unique_id())
    with pytest.raises(ValueError, match="unique_id has 3 bytes"):
        nccl.Communicator(0, 1, b"abc")


@needs_mpi
@needs_nccl
def test_init_process_group_nccl_without_a_gpu_fails_clearly():
    if _gpu_count():
        pytest.skip("a GPU is present")
    code = ("import tinyml.distributed as d\ntry:\n    d.init_process_group('nccl')\n"
            "except RuntimeError as e:\n    print('error:', e)\nassert not d.is_initialized()\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"})
    assert run.returncode == 0, run.stderr
    want = "error: init_process_group(backend='nccl'): rank 0/1: the nccl backend needs an NVIDIA GPU"
    assert want in run.stdout, run.stdout


def test_cpu_and_strided_tensors_are_refused_before_any_nccl_call():
    with pytest.raises(RuntimeError, match="the nccl backend works on cuda tensors; got a tensor on cpu"):
        nccl_collectives._array(tinyml.ones(3), "all_reduce")
    if not tinyml.cuda.is_available():
        return
    t = tinyml.tensor(np.ones((3, 4), np.float32), device="cuda").t()
    with pytest.raises(ValueError, match=r"all_reduce: the nccl backend needs contiguous tensors; got shape "
                                         r"\[4, 3\] with strides \[1, 4\]"):
        nccl_collectives._array(t, "all_reduce")


@needs_mpi  # the ranks and the unique id come through MPI, even for one rank
def test_collectives_on_cuda_one_rank(gpus):
    # a 1-GPU, 1-rank communicator is valid NCCL (all_reduce is the identity): the whole path runs
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, str(HERE / "nccl_worker.py")], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    for check in ("all_reduce float32", "all_reduce bfloat16", "gather/scatter bool",
                  "async work, stream order and barrier", "errors"):
        assert f"ok {check}" in run.stdout, run.stdout


@needs_mpi
def test_collectives_on_cuda_two_ranks(gpus):
    if gpus < 2:
        pytest.skip(f"needs 2 GPUs, found {gpus}")
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "CUDA_VISIBLE_DEVICES")}
    run = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(HERE / "nccl_worker.py")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ok errors" in run.stdout, run.stdout


class _OneRankComm:
    """What NCCL does on a 1-rank communicator (every collective copies send to recv), on the
    host-emulated cuda device: the tensor plumbing of nccl_collectives, tested without a GPU."""

    ITEMSIZE = {0: 1, 1: 1, 2: 4, 3: 4, 4: 8, 5: 8, 6: 2, 7: 4, 8: 8, 9: 2}

    def __init__(self):
        self.calls = []

    def _copy(self, name, send, recv, count, dtype, *rest):
        self.calls.append((name, count, dtype) + rest)
        ctypes.memmove(recv, send, count * self.ITEMSIZE[dtype])

    def all_reduce(self, send, recv, count, dtype, op):
        self._copy("all_reduce", send, recv, count, dtype, op)

    def broadcast(self, send, recv, count, dtype, root):
        self._copy("broadcast", send, recv, count, dtype, root)

    def all_gather(self, send, recv, count, dtype):
        self._copy("all_gather", send, recv, count, dtype)

    def reduce_scatter(self, send, recv, count, dtype, op):
        self._copy("reduce_scatter", send, recv, count, dtype, op)


@pytest.fixture
def one_rank_group(monkeypatch):
    if not tinyml.cuda.is_available() or not tinyml.cuda.emulated():  # memmove needs host memory
        pytest.skip("needs the host-emulated cuda device (TRITON_INTERPRET=1 without a GPU)")
    from types import SimpleNamespace

    from tinyml.distributed import _backend
    g = SimpleNamespace(backend="nccl", rank=0, size=1, timeout_s=5.0, broken=None, nccl=_OneRankComm())
    monkeypatch.setattr(_backend, "_group", g)
    return g


def test_collectives_route_cuda_tensors_to_nccl_with_its_codes(one_rank_group):
    import tinyml.distributed as dist
    comm = one_rank_group.nccl
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = tinyml.tensor(x, device="cuda")
    version = t._version[0]
    assert dist.all_reduce(t, ReduceOp.AVG) is None and t._version[0] == version + 1
    dist.broadcast(t, src=0)
    outs = [tinyml.tensor(np.zeros((3, 4), np.float32), device="cuda")]
    dist.all_gather(outs, t)
    np.testing.assert_array_equal(outs[0].cpu().numpy(), x)
    big = tinyml.tensor(np.zeros((3, 4), np.float32), device="cuda")
    dist.all_gather_into_tensor(big, t)
    out = tinyml.tensor(np.zeros((3, 4), np.float32), device="cuda")
    dist.reduce_scatter(out, [tinyml.tensor(x + 1, device="cuda")], op=ReduceOp.MAX)
    np.testing.assert_array_equal(out.cpu().numpy(), x + 1)
    work = dist.reduce_scatter_tensor(out, tinyml.tensor(x + 2, device="cuda"), async_op=True)
    assert work.is_completed() and work.wait()
    np.testing.assert_array_equal(out.cpu().numpy(), x + 2)
    np.testing.assert_array_equal(big.cpu().numpy(), x)
    f32, u8, ops = nccl.NCCL_DTYPES["float32"], nccl.NCCL_DTYPES["uint8"], nccl.NCCL_OPS
    assert comm.calls == [("all_reduce", 12, f32, ops["avg"]), ("broadcast", 48, u8, 0),
                          ("all_gather", 48, u8), ("all_gather", 48, u8),
                          ("reduce_scatter", 12, f32, ops["max"]),
                          ("reduce_scatter", 12, f32, ops["sum"])]


def test_nccl_collective_errors_name_the_values(one_rank_group):
    import tinyml.distributed as dist
    t = tinyml.tensor(np.zeros((3, 4), np.float32), device="cuda")
    with pytest.raises(ValueError, match=r"all_gather: tensor_list has 2 tensors; the world size is 1"):
        dist.all_gather([t, t], t)
    with pytest.raises(ValueError, match=r"reduce_scatter: input_list\[0\] is float64\[3, 4\]; the output is "
                                         r"float32\[3, 4\]"):
        dist.reduce_scatter(t, [tinyml.tensor(np.zeros((3, 4)), device="cuda")])
    with pytest.raises(ValueError, match=r"output_tensor has shape \[2, 4\]; with input_tensor of shape \[3"):
        dist.all_gather_into_tensor(tinyml.tensor(np.zeros((2, 4), np.float32), device="cuda"), t)
    with pytest.raises(ValueError, match="broadcast: src=1 is not a rank of this group"):
        dist.broadcast(t, src=1)
    with pytest.raises(RuntimeError, match="AVG needs a floating dtype, got int64"):
        dist.all_reduce(tinyml.tensor(np.zeros(3, np.int64), device="cuda"), ReduceOp.AVG)
    assert one_rank_group.nccl.calls == []
