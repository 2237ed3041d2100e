"""DistributedDataParallel: one model replica per rank, gradients averaged during backward.

At wrap time rank 0's parameters and buffers are broadcast to every rank. The parameters that
require grad are grouped into buckets of at most `bucket_cap_mb` (one dtype each; the first at
most 1 MiB, as in PyTorch, so that communication starts early), in reverse parameter order,
because backward produces the last layers' gradients first. Each parameter
carries a leaf gradient hook (Tensor.register_hook, which tinyml's engine runs once per backward
with the leaf's summed gradient, right before accumulating it into .grad). The hook writes
`.grad + incoming` into the parameter's slot of its bucket's flat buffer; the bucket whose last
slot is written is launched as a non-blocking MPI Iallreduce while backward goes on (each later
hook tests the launched requests: MPI progresses them only inside MPI calls). Buckets
launch in index order on every rank (a ready bucket waits for the ones before it), so that all
ranks post their collectives in the same order.

The hook of the last parameter to become ready finalizes: it waits for every bucket, divides by
the world size and writes the averaged gradients into `.grad` (every other parameter has been
accumulated by then; the last one gets its average by returning it from the hook). Hence
    grad_p = (1 / world_size) * sum_r grad_p^(r)        after loss.backward() on every rank.

Under tinyml.profiler.profile, each bucket's allreduce (launch to observed completion) and the
final wait are recorded as "comm" events; tinyml.distributed.overlap measures from the trace how
much of that time backward's compute covered.

no_sync() skips all of this: gradients accumulate locally, and the first synchronised backward
afterwards averages the accumulated sums. Parameters that get no gradient (unused in forward)
need find_unused_parameters=True: forward then walks the autograd graph from the outputs and
marks unreachable parameters ready at once; otherwise the next forward raises an error naming
them, as PyTorch does.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from .. import nn, profiler
from ..autograd import is_grad_enabled
from ..tensor import Tensor
from . import _backend
from .collectives import broadcast


class _Bucket:
    """A flat buffer of the gradients of a few parameters of one dtype (reduced in float32 for
    float16/bfloat16), and the slot of each."""

    def __init__(self, index: int, params: list):
        self.index = index
        self.params = params
        dtype = params[0].dtype.np
        self.wire = np.dtype(np.float32) if dtype.itemsize == 2 and dtype.kind in "fV" else dtype
        sizes = [p.numel() for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
        self.buffer = np.empty(self.offsets[-1], self.wire)
        self.pending = len(params)
        self.request = None
        self.launched_at = self.done_at = 0.0  # perf_counter times, for the profiler's trace

    def slot(self, k: int) -> np.ndarray:
        return self.buffer[self.offsets[k]:self.offsets[k + 1]].reshape(self.params[k].shape)


class DistributedDataParallel(nn.Module):
    """torch.nn.parallel.DistributedDataParallel over the mpi backend (see the module docstring)."""

    def __init__(self, module: nn.Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None, bucket_cap_mb: float = 25,
                 find_unused_parameters: bool = False, gradient_as_bucket_view: bool = False,
                 static_graph: bool = False):
        super().__init__()
        g = _backend.group()
        if g.nccl is not None:
            raise NotImplementedError("DistributedDataParallel runs over the mpi backend (cpu modules) only; "
                                      "it is not implemented over the nccl backend")
        unsupported = (("device_ids", device_ids, None), ("output_device", output_device, None),
                       ("dim", dim, 0), ("process_group", process_group, None),
                       ("gradient_as_bucket_view", gradient_as_bucket_view, False),
                       ("static_graph", static_graph, False))
        for name, value, supported in unsupported:
            if value != supported:
                raise ValueError(f"DistributedDataParallel: {name}={value!r} is not supported (cpu modules "
                                 f"over the default process group); leave it at {supported!r}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb}")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.require_backward_grad_sync = True
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        for n, p in named:
            if p.device.type != "cpu":
                raise RuntimeError(f"DistributedDataParallel: parameter {n} is on {p.device}; the mpi "
                                   "backend works on cpu tensors")
        _check_same_parameters(g, module)
        with_buffers = [t for t in module.buffers() if t is not None]
        works = [broadcast(t, 0, async_op=True) for t in list(module.parameters()) + with_buffers]
        for w in works:
            w.wait()
        self._names = {id(p): n for n, p in named}
        self._buckets = _make_buckets([p for _, p in named][::-1], bucket_cap_mb * 2**20)
        self._where = {id(p): (b, k) for b in self._buckets for k, p in enumerate(b.params)}
        self._ready: set = set()
        self._unused: set = set()
        self._next_launch = 0
        self._sync_this_iter = False
        self._handles = [p.register_hook(self._make_hook(p)) for _, p in named]

    # ---- forward ---------------------------------------------------------------------------
    def forward(self, *inputs, **kwargs):
        self._check_previous_reduction()
        if self.broadcast_buffers:
            works = [broadcast(t, 0, async_op=True) for t in self.module.buffers() if t is not None]
            for w in works:
                w.wait()
        self._sync_this_iter = self.require_backward_grad_sync and is_grad_enabled()
        out = self.module(*inputs, **kwargs)
        if self._sync_this_iter and self.find_unused_parameters:
            reachable = _reachable_leaves(out)
            for b in self._buckets:
                for p in b.params:
                    if id(p) not in reachable:
                        self._unused.add(id(p))
                        self._mark_ready(p, None)
        return out

    @contextmanager
    def no_sync(self):
        """Backward passes inside accumulate gradients locally, without communication."""
        previous, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # ---- the reducer -------------------------------------------------------------------------
    def _make_hook(self, p: Tensor):
        def hook(grad: Tensor):
            if not self._sync_this_iter:
                return None
            return self._mark_ready(p, grad)
        return hook

    def _mark_ready(self, p: Tensor, grad: Tensor | None):
        if id(p) in self._ready:
            name = self._names[id(p)]
            raise RuntimeError(f"DistributedDataParallel: parameter {name} got a gradient twice in one "
                               "iteration (a second backward through the same forward, or a parameter "
                               "reached after find_unused_parameters marked it unused): not supported")
        bucket, k = self._where[id(p)]
        slot = bucket.slot(k)
        old = p._grad
        if grad is None:
            slot[...] = 0 if old is None else old._data
        elif old is None:
            np.copyto(slot, grad._data, casting="unsafe")
        else:
            np.add(old._data, grad._data, out=slot, casting="unsafe")
        self._ready.add(id(p))
        bucket.pending -= 1
        profiling = profiler.profile._active is not None
        if self._next_launch and self._buckets[self._next_launch - 1].request is not None:
            # MPI moves a non-blocking collective along only inside MPI calls (no progress thread):
            # testing the launched buckets at each hook is what overlaps them with backward
            if profiling:  # one test per bucket: the trace shows when each one completed
                for b in self._buckets[:self._next_launch]:
                    if not b.done_at and b.request.Test():
                        b.done_at = time.perf_counter()
            else:
                _backend.mpi().Request.Testall([b.request for b in self._buckets[:self._next_launch]])
        while self._next_launch < len(self._buckets) and not self._buckets[self._next_launch].pending:
            b = self._buckets[self._next_launch]
            b.launched_at, b.done_at = time.perf_counter(), 0.0
            b.request = _backend.group().comm.Iallreduce(_backend.mpi().IN_PLACE, b.buffer)
            self._next_launch += 1
        if self._next_launch == len(self._buckets):
            return self._finalize(p if grad is not None else None)
        return None

    def _finalize(self, current: Tensor | None):
        """Wait for every bucket, average, write .grad; returns the current parameter's gradient."""
        g = _backend.group()
        what = f"DistributedDataParallel gradient allreduce ({len(self._buckets)} buckets)"
        wait_start = time.perf_counter()
        _backend.Work([b.request for b in self._buckets], None, what).wait()
        prof = profiler.profile._active
        if prof is not None:
            _record_communication(prof, self._buckets, wait_start, time.perf_counter())
        used = None
        if self.find_unused_parameters:  # a parameter unused on every rank keeps .grad None, as in PyTorch
            used = np.array([id(p) not in self._unused for b in self._buckets for p in b.params], np.int32)
            _backend.Work([g.comm.Iallreduce(_backend.mpi().IN_PLACE, used)], None, what).wait()
        result = None
        i = 0
        for b in self._buckets:
            np.divide(b.buffer, g.size, out=b.buffer)
            for k, p in enumerate(b.params):
                globally_used = used is None or used[i]
                i += 1
                if not globally_used and p._grad is None:
                    continue
                avg = Tensor._make(b.slot(k).astype(p.dtype.np, copy=True))
                if p is current:
                    p._grad, result = None, avg  # the engine stores it as .grad right after this hook
                else:
                    p._grad = avg
            b.pending = len(b.params)
            b.request = None
        self._ready.clear()
        self._unused.clear()
        self._next_launch = 0
        self._sync_this_iter = False
        return result

    def _check_previous_reduction(self) -> None:
        if not self._ready:
            return
        missing = [self._names[id(p)] for b in self._buckets for p in b.params if id(p) not in self._ready]
        raise RuntimeError("DistributedDataParallel: expected to have finished reduction in the prior "
                           "iteration before starting a new one; these parameters got no gradient: "
                           f"{', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}. Make sure every "
                           "forward output takes part in the loss, or pass find_unused_parameters=True")


def _record_communication(prof, buckets: list, wait_start: float, wait_end: float) -> None:
    """Put each bucket's allreduce (from its launch to the moment it was seen complete) and the
    final wait on the profiler's timeline, as "comm" events (tinyml.distributed.overlap reads them)."""
    for b in buckets:
        end = b.done_at or wait_end  # not seen complete before the final wait: the wait completed it
        prof.events.append(profiler.Event(f"DDP allreduce bucket {b.index}", "comm", "mpi",
                                          ((b.buffer.size,),) if prof.record_shapes else (), b.launched_at,
                                          end, bytes=b.buffer.nbytes))
    prof.events.append(profiler.Event("DDP wait", "comm", "mpi", (), wait_start, wait_end))


FIRST_BUCKET_BYTES = 2**20  # PyTorch's first bucket: small, so that communication starts early in backward


def _make_buckets(params: list, cap_bytes: float) -> list:
    buckets, current, size = [], [], 0
    for p in params:
        nbytes = p.numel() * p.dtype.np.itemsize
        cap = min(cap_bytes, FIRST_BUCKET_BYTES) if not buckets else cap_bytes
        if current and (size + nbytes > cap or p.dtype is not current[0].dtype):
            buckets.append(_Bucket(len(buckets), current))
            current, size = [], 0
        current.append(p)
        size += nbytes
    if current:
        buckets.append(_Bucket(len(buckets), current))
    return buckets


def _check_same_parameters(g, module: nn.Module) -> None:
    mine = [(n, tuple(p.shape), p.dtype.name) for n, p in module.named_parameters()]
    reference = g.comm.bcast(mine, root=0)
    if mine != reference:
        diff = next((f"{a} here vs {b} on rank 0" for a, b in zip(mine, reference) if a != b),
                    f"{len(mine)} parameters here vs {len(reference)} on rank 0")
        raise RuntimeError(f"DistributedDataParallel: rank {g.rank}'s model differs from rank 0's: {diff}")


def _reachable_leaves(out) -> set:
    """ids of the leaf tensors reachable backwards from the tensors in `out` (nested)."""
    stack, seen, leaves = [], set(), set()
    todo = [out]
    while todo:
        x = todo.pop()
        if isinstance(x, Tensor):
            if x.grad_fn is None:
                leaves.add(id(x))
            else:
                stack.append(x.grad_fn)
        elif isinstance(x, (list, tuple)):
            todo.extend(x)
        elif isinstance(x, dict):
            todo.extend(x.values())
        elif hasattr(x, "__dict__"):  # output dataclasses (loss + logits)
            todo.extend(v for v in vars(x).values() if isinstance(v, (Tensor, list, tuple, dict)))
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for edge in node.next_edges:
            if edge is None:
                continue
            child = edge[0]
            if isinstance(child, Tensor):
                leaves.add(id(child))
            else:
                stack.append(child)
    return leaves
