"""Data-parallel training runs over MPI: `tinyml train --nproc N` and `mpiexec -n N tinyml train`.

    relaunch(2, sys.argv[1:])             # --nproc 2: runs `mpiexec -n 2 python -m tinyml.train.cli ...`
    init_from_launcher()                  # under mpiexec: joins the process group; (rank, world_size)
    trainer = DistributedTrainer(model, RandomWindowSampler(ids, T, B, seed=shard_seed(seed)), ...)

DistributedTrainer is the generic Trainer with the model wrapped in DistributedDataParallel:
- every rank draws its own batches (shard_seed: rank r's sampler seed), so a step trains on
  world_size x batch_size sequences; gradients are averaged over ranks during backward, and the
  micro-batches of gradient accumulation but the last run under no_sync();
- the logged loss and the validation loss are averaged over ranks, so that every rank takes the
  same early-stop decision; throughput counts the tokens of all ranks;
- rank 0 alone writes metrics.jsonl, loss.png, the progress bar and the checkpoint; the checkpoint
  holds the sampler and RNG state of every rank ("ranks"), and the world size in its extra state,
  so that a resume with the same --nproc continues bit-exactly on every rank (another world size
  is refused by check_resumable, naming both values).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np

import tinyml
import tinyml.distributed as dist
import tinyml.random

from .batches import batch_tokens
from .checkpoint import load_checkpoint, save_checkpoint
from .progress import MetricsLog
from .trainer import Trainer

_PIP = "pip install mpi4py mpich"
# rank r's sampler seed is seed + r * stride: distinct streams, and rank 0's is the plain seed
RANK_SEED_STRIDE = 10007


def launched_by_mpiexec() -> bool:
    """True inside a process that an MPI launcher started with more than one rank (MPICH's hydra
    sets PMI_SIZE, Open MPI OMPI_COMM_WORLD_SIZE)."""
    size = os.environ.get("PMI_SIZE") or os.environ.get("OMPI_COMM_WORLD_SIZE") or "1"
    return int(size) > 1


def init_from_launcher() -> tuple[int, int]:
    """Join the default process group when started by mpiexec (once); (rank, world_size)."""
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    return dist.get_rank(), dist.get_world_size()


def shard_seed(seed: int, rank: int | None = None) -> int:
    """The seed of this rank's (or `rank`'s) training sampler."""
    if rank is None:
        rank = dist.get_rank() if dist.is_initialized() else 0
    return int(seed) + RANK_SEED_STRIDE * rank


def strip_nproc(argv: list[str]) -> list[str]:
    """argv without its `--nproc N` / `--nproc=N` (the relaunched ranks must not relaunch)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def mpiexec_command(nproc: int, argv: list[str]) -> list[str]:
    """The command that runs `tinyml <argv>` on `nproc` ranks of this machine."""
    if not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"--nproc must be a positive integer, got {nproc!r}")
    launcher = shutil.which("mpiexec") or shutil.which("mpiexec", path=os.path.dirname(sys.executable))
    if launcher is None:
        raise RuntimeError(f"--nproc {nproc} needs an MPI launcher (mpiexec) and mpi4py; install them with "
                           f"`{_PIP}`")
    if not dist.is_available():
        raise RuntimeError(f"--nproc {nproc} needs mpi4py; install it with `{_PIP}`")
    return [launcher, "-n", str(nproc), sys.executable, "-m", "tinyml.train.cli", *strip_nproc(argv)]


def relaunch(nproc: int, argv: list[str]) -> int:
    """Run `tinyml <argv>` under mpiexec on `nproc` ranks and return its exit status. Each rank
    gets cores // nproc OpenMP threads unless OMP_NUM_THREADS is set."""
    command = mpiexec_command(nproc, argv)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return subprocess.call(command, env=env)


class DistributedTrainer(Trainer):
    """Trainer over DistributedDataParallel (see the module docstring); the arguments are the
    Trainer's plus DDP's bucket_cap_mb and find_unused_parameters. Every rank must build it."""

    def __init__(self, model, train_batches, val_batches=None, config=None, out_dir=None, device=None,
                 extra_state=None, loss_fn=None, bucket_cap_mb: float = 25,
                 find_unused_parameters: bool = False):
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.ddp = dist.DistributedDataParallel(model, bucket_cap_mb=bucket_cap_mb,
                                                find_unused_parameters=find_unused_parameters)
        if config is not None and self.rank:
            config = replace(config, progress=False)
        extra_state = {**(extra_state or {}), "world_size": self.world_size}
        super().__init__(model, train_batches, val_batches, config, out_dir, device, extra_state, loss_fn)
        if self.rank:
            if self.config.progress:  # the default config: rank 0 draws the bar
                self.config = replace(self.config, progress=False)
            self.metrics = MetricsLog(None)
        user_loss = self.loss_fn
        # the trainer keeps the bare model (state_dict keys without "module."); the loss runs DDP's forward
        self.loss_fn = lambda _model, batch: user_loss(self.ddp, batch)

    def _advance(self, run):
        # A Ctrl-C (mpiexec forwards it to every rank) must stop every rank at the same step: the
        # ranks agree on the stop flag before each step, or one would wait in a collective forever.
        flag = tinyml.tensor(np.array([self._stop_requested], np.uint8))
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self._stop_requested = bool(flag.item())
        return super()._advance(run)

    def train_step(self) -> tuple[float, float, int]:
        """Trainer.train_step with the gradient allreduce on the last micro-batch only; the loss is
        the mean over ranks and the tokens the sum."""
        cfg = self.config
        total, tokens = 0.0, 0
        for micro in range(cfg.grad_accum):
            batch = self.train_src.next()
            tokens += batch_tokens(batch)
            if micro < cfg.grad_accum - 1:
                with self.ddp.no_sync():
                    loss = self._loss(batch)
                    (loss / cfg.grad_accum).backward()
            else:
                loss = self._loss(batch)
                (loss / cfg.grad_accum).backward()
            total += float(loss.item())
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = float("nan")
        if cfg.grad_clip:  # gradients are equal on every rank now: so are the norm and the step
            norm = float(tinyml.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        summed = tinyml.tensor(np.array([total / cfg.grad_accum, tokens], np.float64))
        dist.all_reduce(summed)
        loss_sum, all_tokens = summed.numpy().tolist()
        return loss_sum / self.world_size, norm, int(all_tokens)

    def evaluate(self, on_batch=None) -> float | None:
        val = super().evaluate(on_batch if not self.rank else None)
        if val is None:
            return None
        mean = tinyml.tensor(np.array([val], np.float64))
        dist.all_reduce(mean, op=dist.ReduceOp.AVG)
        return float(mean.item())

    def state_dict(self, sampler_state=None, rng_state=None) -> dict:
        """The Trainer's state plus {"ranks": {r: {"sampler", "rng"}}} of every rank (a collective:
        every rank calls it, through save_checkpoint)."""
        state = super().state_dict(sampler_state, rng_state)
        mine = {"sampler": state["sampler"], "rng": state["rng"]}
        every = dist._backend.group().comm.allgather(mine)
        state["ranks"] = {str(r): s for r, s in enumerate(every)}
        return state

    def save_checkpoint(self, path: str | None = None, **kw) -> str:
        """Every rank contributes its sampler and RNG state; rank 0 writes; all wait for the file."""
        path = path or self.checkpoint_path
        if path is None:
            raise ValueError("save_checkpoint: no path and no out_dir")
        state = self.state_dict(**kw)
        if self.rank == 0:
            save_checkpoint(path, state)
        dist.barrier()
        return path

    def load_checkpoint(self, path: str | None = None) -> None:
        """The shared state from the checkpoint, then this rank's own sampler and RNG state."""
        path = path or self.checkpoint_path
        super().load_checkpoint(path)
        ranks = load_checkpoint(path, device=self.device).get("ranks")
        if ranks is None or str(self.rank) not in ranks:
            raise ValueError(f"checkpoint {path} has no state for rank {self.rank}: it was not written by a "
                             f"run of {self.world_size} ranks")
        own = ranks[str(self.rank)]
        self.train_src.load_state_dict(own["sampler"])
        tinyml.random.set_rng_state(own["rng"])

    def _plot(self) -> None:
        if self.rank == 0:
            super()._plot()
