"""Run under `mpiexec -n 2` with an empty folder as argv[1]: DistributedTrainer trains a tiny GPT
for 6 steps straight, and 3 steps + a resume to 6 in another folder; both must end with the same
parameters bit for bit on every rank, with identical (rank-0-only) metrics, and only rank 0 writes
checkpoints and plots."""
import json
import os
import sys
import warnings

import numpy as np

# tinyml._C may be missing while another build runs: the reference kernels then serve, with a warning
warnings.simplefilter("ignore", RuntimeWarning)

import tinyml.train.distributed_run as distributed_run  # noqa: E402
from tinyml.models import GPT, GPTConfig  # noqa: E402
from tinyml.train.distributed_run import DistributedTrainer, init_from_launcher, shard_seed  # noqa: E402
from tinyml.train.trainer import TrainConfig, Trainer  # noqa: E402

import tinyml  # noqa: E402
import tinyml.distributed as dist  # noqa: E402
from tinyml.data.tokens import RandomWindowSampler  # noqa: E402

rank, world = init_from_launcher()
root = sys.argv[1]
writes = {"checkpoint": 0, "plot": 0}  # this rank's calls of the writers DistributedTrainer uses
real_save, real_plot = distributed_run.save_checkpoint, Trainer._plot


def counting_save(*args, **kwargs):
    writes["checkpoint"] += 1
    return real_save(*args, **kwargs)


def counting_plot(self):
    writes["plot"] += 1
    return real_plot(self)


distributed_run.save_checkpoint, Trainer._plot = counting_save, counting_plot
ids = np.random.default_rng(0).integers(0, 23, 500).astype(np.int64)


def trainer(out_dir, max_steps, model_seed):
    tinyml.manual_seed(model_seed + rank)  # DDP broadcasts rank 0's weights; a resume loads the checkpoint
    model = GPT(GPTConfig(vocab_size=23, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1))
    config = TrainConfig(max_steps=max_steps, lr=3e-3, warmup_steps=2, grad_accum=2, eval_interval=3,
                         eval_iters=2, log_interval=1, progress=False)
    train = RandomWindowSampler(ids[:400], 8, 2, seed=shard_seed(5))
    val = RandomWindowSampler(ids[400:], 8, 2, seed=6)
    return DistributedTrainer(model, train, val, config, out_dir=out_dir, bucket_cap_mb=0.001)


def params(t):
    return [p.detach().numpy().copy() for p in t.model.parameters()]


straight = trainer(os.path.join(root, "straight"), 6, 0)
summary = straight.fit()
assert summary["step"] == 6, summary
first = trainer(os.path.join(root, "resumed"), 3, 0)
first.fit()
resumed = trainer(os.path.join(root, "resumed"), 6, 99)
resumed.fit(resume=True)
for a, b in zip(params(straight), params(resumed)):
    np.testing.assert_array_equal(a, b)
mine = np.concatenate([p.ravel() for p in params(straight)])
every = [tinyml.zeros(mine.size) for _ in range(world)]
dist.all_gather(every, tinyml.tensor(mine))
for other in every:
    np.testing.assert_array_equal(other.numpy(), mine)
counts = dist._backend.group().comm.allgather(writes)
if rank == 0:
    assert counts[0]["checkpoint"] >= 3 and counts[0]["plot"] >= 3, counts  # one per fit at least
    assert all(c == {"checkpoint": 0, "plot": 0} for c in counts[1:]), counts
    print("ok rank 0 alone writes checkpoints and plots", flush=True)
    def records(folder):
        with open(os.path.join(root, folder, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f]
        return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "time")} for r in rows]

    a, b = records("straight"), records("resumed")
    assert a == b, (a, b)
    assert [r["step"] for r in a if "loss" in r] == [1, 2, 3, 4, 5, 6], a  # one writer: no duplicate lines
    assert len([r for r in a if "val_loss" in r]) == 2
    print("ok bit-exact resume on 2 ranks", flush=True)
dist.barrier()
