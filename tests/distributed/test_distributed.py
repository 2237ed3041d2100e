"""tinyml.distributed: the collectives, DDP and the sampler under `mpiexec -n 2` (skipped where
mpi4py or mpiexec is missing: `pip install mpi4py mpich`), plus the single-process parts."""
import subprocess
import sys

import numpy as np
import pytest
from mpi_launch_helpers import mpirun, needs_mpi

import tinyml.distributed as dist


@needs_mpi
def test_collectives_against_numpy_all_dtypes():
    run = mpirun("collectives_worker.py", timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    checks = ("ok all_reduce tinyml.bfloat16", "ok gather/scatter tinyml.bool", "ok edge cases", "ok errors")
    for check in checks:
        assert check in run.stdout, run.stdout  # rank 0 reports; a failure on either rank exits 1


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
