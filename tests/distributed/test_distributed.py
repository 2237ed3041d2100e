"""tinyml.distributed: the collectives, DDP and the sampler under `mpiexec -n 2` (skipped where
mpi4py or mpiexec is missing: `pip install mpi4py mpich`), plus the single-process parts."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mpi_launch_helpers import mpirun, needs_mpi

import tinyml.distributed as dist
from tinyml.distributed import native_mpi


@needs_mpi
@pytest.mark.parametrize("native", ["1", "0"], ids=["C all_reduce", "mpi4py all_reduce"])
def test_collectives_against_numpy_all_dtypes(native):
    run = mpirun("collectives_worker.py", timeout=120, env={"TINYML_MPI_NATIVE": native})
    assert run.returncode == 0, run.stdout + run.stderr
    checks = ("ok all_reduce tinyml.bfloat16", "ok gather/scatter tinyml.bool", "ok edge cases", "ok errors")
    for check in checks:
        assert check in run.stdout, run.stdout  # rank 0 reports; a failure on either rank exits 1


@needs_mpi
def test_native_all_reduce_serves_declines_and_raises():
    run = mpirun("native_mpi_worker.py", timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    states = set(re.findall(r"^native (True|False) expected (True|False)$", run.stdout, re.MULTILINE))
    assert len(states) == 1, run.stdout  # both ranks agree
    native, expected = states.pop()
    assert native == expected, run.stdout  # on where MPI is MPICH's ABI and tinyml._C is built, off elsewhere
    checks = ("served dtypes and ops", "tensors, 0-d and empty arrays", "declined arrays and ops", "errors",
              "destroy and init again") if expected == "True" else ("not served here",)
    for check in checks:
        assert f"ok {check}" in run.stdout, run.stdout


@needs_mpi
def test_ddp_matches_one_process_with_twice_the_batch():
    run = mpirun("ddp_worker.py", timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    for check in ("mlp averaged gradients", "gpt averaged gradients", "gpt accumulate=2 small buckets",
                  "mlp accumulate=2 one bucket", "find_unused_parameters", "unused parameter error",
                  "profiled gradients", "profiler trace of the bucket allreduces", "sampler"):
        assert f"ok {check}" in run.stdout, run.stdout


@needs_mpi
def test_dead_peer_gives_a_timeout_error_not_a_hang():
    # -disable-auto-cleanup: the launcher would otherwise kill the survivor as soon as a rank dies
    run = mpirun("dead_peer_worker.py", "2", timeout=60, flags=("-disable-auto-cleanup",))
    assert run.returncode != 0
    assert "survivor error: rank 0/2: DistributedDataParallel gradient allreduce" in run.stdout, run.stdout
    assert "did not complete within 2 s" in run.stdout
    assert "then: the process group is broken" in run.stdout


@needs_mpi
def test_dead_peer_ends_a_blocking_all_reduce_through_the_watchdog():
    run = mpirun("dead_peer_allreduce_worker.py", "1", timeout=60, flags=("-disable-auto-cleanup",))
    assert run.returncode != 0
    assert "rank 0: first all_reduce ok" in run.stdout, run.stdout + run.stderr
    assert "should not have" not in run.stdout
    assert "rank 0/2: all_reduce(sum) of float32[2] did not complete within 1 s" in run.stderr, run.stderr
    assert "ending the job with MPI_Abort" in run.stderr


def test_extras_install_the_mpi_and_nccl_libraries():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(Path(__file__).parents[2] / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert {"mpi4py", "mpich"} <= set(extras["distributed"])  # pip install 'tinyml[distributed]'
    assert "nvidia-nccl-cu12" in extras["nccl"]


def test_native_mpi_checks_handles_and_dtypes_before_use():
    assert native_mpi._int32_handle(0xFFFFFFFF84000000, "communicator") == 0x84000000  # sign-extended
    assert native_mpi._int32_handle(-2, "op") == 0xFFFFFFFE
    with pytest.raises(ValueError, match="communicator handle 0x10000000000 is not an MPICH"):
        native_mpi._int32_handle(2**40, "communicator")
    _C = native_mpi.native_module()
    if _C is None:
        pytest.skip("tinyml._C is not built")
    # never enabled in this process (no MPI here): the C call declines, and bad setups are refused
    assert _C.distributed_mpi_all_reduce(np.ones(2, np.float32), [0], dist.ReduceOp.SUM) is False
    with pytest.raises(ValueError, match="the MPI_Allreduce address is 0"):
        _C.distributed_mpi_open(0, 0, -1, 0x44000000, 2, [], [], np.ndarray)
    with pytest.raises(ValueError, match="dtype float16 is not a 4- or 8-byte built-in numpy type"):
        _C.distributed_mpi_open(1, 0, -1, 0x44000000, 2, [(np.dtype(np.float16), 1)], [], np.ndarray)
    with pytest.raises(ValueError, match="communicator handle 4294967296 is not a 32-bit MPICH handle"):
        _C.distributed_mpi_open(1, 0, -1, 2**32, 2, [], [], np.ndarray)
    assert _C.distributed_mpi_all_reduce(np.ones(2, np.float32), [0], dist.ReduceOp.SUM) is False
    assert _C.distributed_mpi_busy() is None


def test_import_tinyml_distributed_does_not_load_mpi4py():
    code = "import sys, tinyml, tinyml.distributed; assert 'mpi4py' not in sys.modules, 'mpi4py imported'"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_missing_mpi4py_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes `from mpi4py import MPI` raise ImportError
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    with pytest.raises(RuntimeError, match="pip install mpi4py mpich"):
        dist.init_process_group("mpi")
    assert not dist.is_available() and not dist.is_initialized()


def test_process_group_errors_before_init():
    with pytest.raises(ValueError, match="'gloo' is not available.*supports 'mpi', 'nccl'"):
        dist.init_process_group("gloo")
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.all_reduce(None)


@pytest.mark.parametrize("n,world,drop_last", [(10, 3, False), (10, 3, True), (2, 4, False), (12, 4, False),
                                               (7, 2, True)])
def test_sampler_matches_torch_without_shuffle(n, world, drop_last):
    torch_sampler = pytest.importorskip("torch.utils.data.distributed").DistributedSampler
    for rank in range(world):
        kwargs = dict(num_replicas=world, rank=rank, shuffle=False, drop_last=drop_last)
        ours, theirs = dist.DistributedSampler(range(n), **kwargs), torch_sampler(range(n), **kwargs)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_sampler_shuffles_by_seed_and_epoch_into_disjoint_shards():
    def shards(epoch, seed=0):
        out = []
        for rank in range(3):
            s = dist.DistributedSampler(range(30), num_replicas=3, rank=rank, seed=seed)
            s.set_epoch(epoch)
            out.append(list(s))
        return out

    first = shards(0)
    assert sorted(np.concatenate(first).tolist()) == list(range(30))
    assert shards(0) == first and shards(1) != first and shards(0, seed=1) != first
    assert first[0] != list(range(0, 30, 3))  # shuffled


def test_sampler_rejects_bad_rank():
    with pytest.raises(ValueError, match=r"Invalid rank 3, rank should be in the interval \[0, 2\]"):
        dist.DistributedSampler(range(5), num_replicas=3, rank=3)
    with pytest.raises(ValueError, match="num_replicas must be a positive integer, got 0"):
        dist.DistributedSampler(range(5), num_replicas=0, rank=0)
