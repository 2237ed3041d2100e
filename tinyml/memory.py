"""Memory instruments: what the autograd graph holds, and the peak memory of a block.

    tinyml.memory.saved_bytes(loss)        bytes of tensors saved for backward behind `loss`
    with tinyml.memory.track() as m:       peak host (and device) bytes allocated inside the block
        train_step()
    print(m.peak_host_bytes)

Saved bytes count each storage once, even when several nodes saved views of it, and leave out
parameters (nn.Parameter: a linear layer saves its weight for the input's gradient, but the module
keeps that storage alive whether or not a graph exists, so it is not activation memory). Host peak
comes from tracemalloc, which sees numpy's buffers; device peak from the cuda allocator when a
GPU is in use.
"""
from __future__ import annotations

import tracemalloc

from .tensor import Tensor


def _walk(root: Tensor):
    """Every graph node reachable from root's grad_fn (iterative)."""
    if root.grad_fn is None:
        return
    seen, stack = {id(root.grad_fn)}, [root.grad_fn]
    while stack:
        node = stack.pop()
        yield node
        for e in node.next_edges:
            if e is None or isinstance(e[0], Tensor):
                continue
            if id(e[0]) not in seen:
                seen.add(id(e[0]))
                stack.append(e[0])


def _storage(t: Tensor) -> Tensor:
    """The tensor owning t's storage: views (expand, slices, transposes) count their base."""
    return t._base if t._base is not None else t


def _saved_entries(node):
    """A node's saved (tensor, version) entries, without triggering a recomputation: the
    placeholder tinyml.utils.checkpoint leaves in `_saved` (it has a `frame`) holds nothing yet."""
    return () if getattr(node._saved, "frame", None) is not None else node._saved


def _activation_roots(node):
    """The storage owners of what one node saved, parameters left out."""
    for e in _saved_entries(node):
        if e is not None:
            root = _storage(e[0])
            if not getattr(root, "_is_param", False):
                yield root


def node_saved_bytes(node) -> int:
    """Bytes of activation storage one node's saved tensors keep alive (0 once backward freed them,
    0 for a node inside tinyml.utils.checkpoint until backward recomputes it; parameters not counted)."""
    return sum(r.nbytes for r in {id(r): r for r in _activation_roots(node)}.values())


def saved_bytes(tensor: Tensor) -> int:
    """Activation memory the graph behind `tensor` keeps alive for backward, in bytes: every saved
    storage once, parameters left out (the module holds them anyway)."""
    seen, total = set(), 0
    for node in _walk(tensor):
        for root in _activation_roots(node):
            if id(root) not in seen:
                seen.add(id(root))
                total += root.nbytes
    return total


class track:
    """Peak host bytes (tracemalloc) and, when cuda is in use, peak device bytes in a block."""

    def __enter__(self) -> track:
        self._was_tracing = tracemalloc.is_tracing()
        if not self._was_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._host_start = tracemalloc.get_traced_memory()[0]
        self._cuda = _cuda_allocator()
        if self._cuda is not None:
            self._cuda.reset_peak_memory_stats()
            self._device_start = self._cuda.memory_allocated()
        return self

    def __exit__(self, *exc) -> None:
        current, peak = tracemalloc.get_traced_memory()
        self.peak_host_bytes = peak - self._host_start
        self.host_bytes_retained = current - self._host_start
        if not self._was_tracing:
            tracemalloc.stop()
        self.peak_device_bytes = None
        if self._cuda is not None:
            self.peak_device_bytes = self._cuda.max_memory_allocated() - self._device_start


def _cuda_allocator():
    """The cuda module if a cuda device has been used in this process, else None."""
    import sys

    mod = sys.modules.get("tinyml.backends.cuda")
    if mod is None or not getattr(mod, "is_initialized", lambda: False)():
        return None
    return mod
