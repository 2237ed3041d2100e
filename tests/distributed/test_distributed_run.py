"""train/distributed_run.py: the mpiexec relaunch of `tinyml`, and DistributedTrainer's rank-0-only
output and bit-exact resume on 2 ranks (skipped without mpi4py/mpiexec: pip install mpi4py mpich)."""
import os
import subprocess

import pytest
from mpi_launch_helpers import MPIEXEC, mpirun, needs_mpi
from tinyml.train import distributed_run


def test_strip_nproc_removes_both_spellings():
    argv = ["train", "--nproc", "2", "--steps", "5", "--nproc=4", "--out", "run"]
    assert distributed_run.strip_nproc(argv) == ["train", "--steps", "5", "--out", "run"]


def test_shard_seed_keeps_rank_0_and_separates_the_others():
    seeds = [distributed_run.shard_seed(7, r) for r in range(4)]
    assert seeds[0] == 7 and len(set(seeds)) == 4


def test_launched_by_mpiexec_reads_the_launcher_environment(monkeypatch):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert not distributed_run.launched_by_mpiexec()
    monkeypatch.setenv("PMI_SIZE", "2")
    assert distributed_run.launched_by_mpiexec()


def test_nproc_errors_name_the_value_and_the_pip_command(monkeypatch):
    with pytest.raises(ValueError, match="--nproc must be a positive integer, got 0"):
        distributed_run.mpiexec_command(0, ["train"])
    monkeypatch.setattr(distributed_run.shutil, "which", lambda *a, **k: None)
    with pytest.raises(RuntimeError, match="--nproc 2 needs an MPI launcher.*pip install mpi4py mpich"):
        distributed_run.mpiexec_command(2, ["train"])


@needs_mpi
def test_relaunch_runs_the_command_line_on_n_ranks():
    command = distributed_run.mpiexec_command(2, ["--nproc", "2", "--help"])
    assert command[:3] == [MPIEXEC, "-n", "2"] and command[-1] == "--help" and "--nproc" not in command
    run = subprocess.run(command, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("usage: tinyml") == 2  # once per rank


@needs_mpi
def test_trainer_on_two_ranks_resumes_bit_exactly(tmp_path):
    run = mpirun("trainer_worker.py", str(tmp_path), timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ok bit-exact resume on 2 ranks" in run.stdout
    assert "ok rank 0 alone writes checkpoints and plots" in run.stdout
    assert sorted(os.listdir(tmp_path / "resumed")) == ["checkpoint.safetensors", "loss.png", "metrics.jsonl"]


@needs_mpi
def test_tinyml_train_nproc_2_runs_two_ranks_and_rank_0_reports(tmp_path):
    """`tinyml train --nproc 2` relaunches itself under mpiexec: one run folder, written by rank 0,
    one report, and a run that `--resume` continues on the same number of ranks."""
    import sys

    text = tmp_path / "tiny.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    out = tmp_path / "run"
    base = [sys.executable, "-m", "tinyml.train.cli", "train", "--nproc", "2", "--data", str(text), "--out",
            str(out), "--batch-size", "2", "--eval-iters", "1", "--sample-tokens", "0", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run([*base, "--steps", "2"], capture_output=True, text=True, timeout=240, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("tinyml train:") == 1 and run.stdout.count("done: step 2") == 1
    assert {"checkpoint.safetensors", "metrics.jsonl", "run.json"} <= set(os.listdir(out))
    run = subprocess.run([*base, "--steps", "3", "--resume"], capture_output=True, text=True, timeout=240,
                         env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "done: step 3" in run.stdout
