"""Run under `mpiexec -n 2`: DistributedDataParallel equivalence and DistributedSampler.

2 ranks x batch B must end with the parameters of 1 process x batch 2B after 5 AdamW steps
(float32, 1e-6), plain and with gradient accumulation under no_sync; every rank recomputes the
single-process reference itself. Prints `ok <check>` lines; any failure raises."""
import os
import sys
import warnings

import numpy as np

# tinyml._C may be missing while another build runs: the reference kernels then serve, with a warning
warnings.simplefilter("ignore", RuntimeWarning)

from tinyml.models import GPT, GPTConfig  # noqa: E402

import tinyml  # noqa: E402
import tinyml.distributed as dist  # noqa: E402
from tinyml import nn  # noqa: E402
from tinyml.distributed import overlap  # noqa: E402

dist.init_process_group("mpi", timeout=60)
rank, world = dist.get_rank(), dist.get_world_size()
if rank:  # one report: the two ranks' lines would interleave in mpiexec's output; failures still exit 1
    sys.stdout = open(os.devnull, "w")
B, STEPS = 4, 5


class MLP(nn.Module):
    def __init__(self, unused_branch=False):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 16), nn.Linear(16, 3)
        self.extra = nn.Linear(16, 3) if unused_branch else None

    def forward(self, x, y):
        return ((self.fc2(self.fc1(x).tanh()) - y) ** 2).mean()


def mlp_batch(step, micro):
    rng = np.random.default_rng(100 * step + micro)
    x, y = rng.standard_normal((world * B, 6)), rng.standard_normal((world * B, 3))
    return tinyml.tensor(x.astype(np.float32)), tinyml.tensor(y.astype(np.float32))


def gpt_batch(step, micro):
    rng = np.random.default_rng(100 * step + micro)
    idx = rng.integers(0, 17, (world * B, 9))
    return tinyml.tensor(idx[:, :-1]), tinyml.tensor(idx[:, 1:])


def gpt_loss(model, idx, targets):
    return model(idx, targets)[1]


def train(make, batch, loss_of, *, ddp: bool, accumulate: int, lr: float = 1e-2, **ddp_kwargs):
    tinyml.manual_seed(rank if ddp else 0)  # DDP ranks start different: the wrap broadcasts rank 0's
    model = make()
    if ddp:
        tinyml.manual_seed(0)
        reference_init = make()
        model = dist.DistributedDataParallel(model, **ddp_kwargs)
        for p, q in zip(model.module.parameters(), reference_init.parameters()):
            np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    opt = tinyml.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    for step in range(STEPS):
        opt.zero_grad()
        for micro in range(accumulate):
            inputs = batch(step, micro)
            if ddp:  # this rank's half of the global batch
                inputs = tuple(t[rank * B:(rank + 1) * B] for t in inputs)
            last = micro == accumulate - 1
            if ddp and not last:
                with model.no_sync():
                    (loss_of(model, *inputs) / accumulate).backward()
            else:
                (loss_of(model, *inputs) / accumulate).backward()
        opt.step()
    return [p.detach().numpy() for p in (model.module if ddp else model).parameters()]


def first_gradients(make, batch, loss_of, *, ddp: bool, **ddp_kwargs):
    """.grad of every parameter after one backward (AdamW is blind to a gradient's scale: this is
    what checks that DDP averages rather than sums)."""
    tinyml.manual_seed(0)
    model = make()
    if ddp:
        model = dist.DistributedDataParallel(model, **ddp_kwargs)
    inputs = batch(0, 0)
    if ddp:
        inputs = tuple(t[rank * B:(rank + 1) * B] for t in inputs)
    loss_of(model, *inputs).backward()
    return [p.grad.numpy() for p in (model.module if ddp else model).parameters()]


def same(a, b, what, atol=1e-6):
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=atol, err_msg=what)
    print("ok", what, flush=True)


def mlp_loss(model, x, y):
    return model(x, y)


# bias=False: the key projection's bias has an exactly-zero gradient (softmax ignores a constant
# per query), so Adam would turn summation-order noise of 1e-10 into steps of lr size
tiny_gpt = GPTConfig(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=16, bias=False)
# lr 1e-3 for the GPT: a few of its weights have gradients that nearly cancel, whose sign Adam's
# first steps follow, so summation order (per-rank means vs one mean, and the BLAS kernel's own order,
# which differs between OpenBLAS's Haswell and SkylakeX kernels) shows at lr * relative error: the trained
# weights are compared to 1% of one Adam step (atol 1e-5), which a step missed or doubled still exceeds
for name, make, batch, loss_of, lr in [("mlp", MLP, mlp_batch, mlp_loss, 1e-2),
                                       ("gpt", lambda: GPT(tiny_gpt), gpt_batch, gpt_loss, 1e-3)]:
    trained_atol = lr * 1e-2 if name == "gpt" else 1e-6
    same(first_gradients(make, batch, loss_of, ddp=False),
         first_gradients(make, batch, loss_of, ddp=True, bucket_cap_mb=0.002), f"{name} averaged gradients")
    for accumulate in (1, 2):
        reference = train(make, batch, loss_of, ddp=False, accumulate=accumulate, lr=lr)
        # bucket_cap_mb small enough for several buckets, launched while backward goes on
        got = train(make, batch, loss_of, ddp=True, accumulate=accumulate, lr=lr, bucket_cap_mb=0.002)
        same(reference, got, f"{name} accumulate={accumulate} small buckets", atol=trained_atol)
    got = train(make, batch, loss_of, ddp=True, accumulate=2, lr=lr)
    same(reference, got, f"{name} accumulate=2 one bucket", atol=trained_atol)

# an unused parameter: found with find_unused_parameters (its .grad stays None), an error otherwise
reference = train(MLP, mlp_batch, mlp_loss, ddp=False, accumulate=1)
tinyml.manual_seed(0)
model = dist.DistributedDataParallel(MLP(unused_branch=True), find_unused_parameters=True,
                                     bucket_cap_mb=0.001)
opt = tinyml.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
for step in range(STEPS):
    opt.zero_grad()
    x, y = (t[rank * B:(rank + 1) * B] for t in mlp_batch(step, 0))
    model(x, y).backward()
    assert model.module.extra.weight.grad is None
    opt.step()
same(reference, [p.detach().numpy() for n, p in model.module.named_parameters() if "extra" not in n],
     "find_unused_parameters")
model = dist.DistributedDataParallel(MLP(unused_branch=True))
x, y = (t[rank * B:(rank + 1) * B] for t in mlp_batch(0, 0))
model(x, y).backward()
try:
    model(x, y)
except RuntimeError as exc:
    assert "extra.weight" in str(exc) and "find_unused_parameters=True" in str(exc), str(exc)
else:
    raise AssertionError("an unused parameter without find_unused_parameters raised no error")
for kwargs, words in (({"device_ids": [0]}, "device_ids=[0] is not supported"),
                      ({"bucket_cap_mb": 0}, "bucket_cap_mb must be positive, got 0")):
    try:
        dist.DistributedDataParallel(MLP(), **kwargs)
    except ValueError as exc:
        assert words in str(exc), str(exc)
    else:
        raise AssertionError(f"DistributedDataParallel accepted {kwargs}")
print("ok unused parameter error", flush=True)

# under the profiler: the same averaged gradients, and each bucket's allreduce on the timeline
tinyml.manual_seed(0)
model = dist.DistributedDataParallel(GPT(tiny_gpt), bucket_cap_mb=0.002)
idx, targets = (t[rank * B:(rank + 1) * B] for t in gpt_batch(0, 0))
gpt_loss(model, idx, targets).backward()
plain = [p.grad.numpy().copy() for p in model.parameters()]
model.zero_grad()
with tinyml.profiler.profile() as prof:
    gpt_loss(model, idx, targets).backward()
same(plain, [p.grad.numpy() for p in model.parameters()], "profiled gradients")
buckets = [ev for ev in prof.events if ev.kind == "comm" and ev.name.startswith("DDP allreduce bucket")]
assert [ev.name for ev in buckets] == [f"DDP allreduce bucket {i}" for i in range(len(model._buckets))]
assert len(buckets) > 2 and all(0 < ev.end - ev.start for ev in buckets), buckets
assert sum(ev.bytes for ev in buckets) == 4 * sum(p.numel() for p in model.parameters())
trace = f"/tmp/tinyml-ddp-trace-{os.getpid()}.json"
prof.export_chrome_trace(trace)
measured, direct = overlap.communication_overlap(trace), overlap.communication_overlap(prof)
os.remove(trace)
assert measured["buckets"] == len(buckets) and 0 <= measured["fraction"] <= 1, measured
assert np.isclose(measured["allreduce_us"], direct["allreduce_us"], rtol=1e-3), (measured, direct)
assert np.isclose(measured["overlapped_us"] + measured["exposed_us"], measured["allreduce_us"])
assert "DDP allreduce bucket 0 [mpi]" in prof.key_averages().table() and "profiled time" in prof.table()
print("ok profiler trace of the bucket allreduces", flush=True)

# DistributedSampler: disjoint shards covering the dataset, padded to a multiple of the world size
for n, drop_last in ((10, False), (11, False), (11, True), (1, False)):
    sampler = dist.DistributedSampler(range(n), drop_last=drop_last, seed=3)
    sampler.set_epoch(2)
    mine = list(sampler)
    out = [tinyml.zeros(len(mine), dtype=tinyml.int64) for _ in range(world)]
    dist.all_gather(out, tinyml.tensor(np.array(mine, np.int64)))
    every = np.concatenate([o.numpy() for o in out])
    assert len(mine) == len(sampler) and len(every) == world * len(sampler)
    if drop_last:
        assert len(set(every.tolist())) == len(every) and len(every) == n - n % world
    else:
        assert set(every.tolist()) == set(range(n)) and len(every) == -(-n // world) * world
    again = dist.DistributedSampler(range(n), drop_last=drop_last, seed=3)
    again.set_epoch(2)
    assert list(again) == mine
    again.set_epoch(3)
    assert n < 4 or list(again) != mine
print("ok sampler", flush=True)
dist.destroy_process_group()
