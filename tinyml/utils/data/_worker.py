"""DataLoader worker processes (num_workers > 0), with torch's protocol and guarantees.

Each worker owns an index queue; all share one result queue. The parent sends (task id, indices)
round-robin, at most prefetch_factor tasks per worker in flight, and yields results in task order
however they arrive, so the batch order equals the single-process order. An IterableDataset
worker answers each request with its next batch or an end marker. A worker's exception travels
back pickled as text and is re-raised in the parent as the same type, naming the worker and
carrying the worker's traceback. Each worker runs the C++ kernels on one thread (as torch's
workers do), since a forked child cannot use the parent's OpenMP pool. Workers stop on a None
task; the parent joins them (terminating any that hang) when the iterator is exhausted, closed or
garbage collected.
"""
from __future__ import annotations

import itertools
import multiprocessing
import queue
import random
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import random as _random
from ... import threads

__all__ = ["WorkerInfo", "get_worker_info"]

_POLL_S = 0.1  # how often the parent checks that its workers are alive while it waits
_worker_info: WorkerInfo | None = None


@dataclass(frozen=True)
class WorkerInfo:
    id: int
    num_workers: int
    seed: int
    dataset: Any


def get_worker_info() -> WorkerInfo | None:
    """Inside a DataLoader worker: its id, the number of workers, its seed and its dataset copy;
    None in the main process."""
    return _worker_info


class _IterableEnd:
    """A worker's answer when its IterableDataset is exhausted."""


@dataclass
class _WorkerError:
    exc_type: type
    worker_id: int
    text: str

    def reraise(self):
        msg = f"Caught {self.exc_type.__name__} in DataLoader worker process {self.worker_id}.\n" \
              f"Original {self.text}"
        try:
            err = self.exc_type(msg)
        except Exception:  # an exception type whose constructor needs other arguments
            err = RuntimeError(msg)
        raise err


def _worker_loop(fetch, dataset, index_queue, result_queue, worker_id: int, num_workers: int, seed: int,
                 init_fn, iterable: bool) -> None:
    global _worker_info
    _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
    # as torch does in its workers: one thread each. A forked child must not enter the parent's
    # OpenMP thread pool (its threads do not exist in the child, and the first parallel region hangs)
    threads.set_num_threads(1)
    random.seed(seed)
    _random.manual_seed(seed & ((1 << 63) - 1))
    np.random.seed(seed & 0xFFFFFFFF)
    try:
        if init_fn is not None:
            init_fn(worker_id)
        batches = fetch.iterate(dataset) if iterable else None
    except Exception as e:
        result_queue.put((-1, _WorkerError(type(e), worker_id, traceback.format_exc())))
        return
    while True:
        try:
            task = index_queue.get()
        except KeyboardInterrupt:
            return
        if task is None:
            return
        task_id, indices = task
        if indices == "reset":  # a persistent worker's next pass over its IterableDataset
            batches = fetch.iterate(dataset)
            continue
        try:
            if iterable:
                data = next(batches, _IterableEnd)
                if data is _IterableEnd:
                    data = _IterableEnd()
            else:
                data = fetch.fetch(dataset, indices)
        except Exception as e:
            data = _WorkerError(type(e), worker_id, traceback.format_exc())
        result_queue.put((task_id, data))


class MultiProcessIterator:
    """One pass over the data with worker processes (kept across passes when persistent_workers)."""

    def __init__(self, loader, fetch) -> None:
        self._loader = loader
        self._fetch = fetch
        self._iterable = loader._is_iterable
        n = loader.num_workers
        ctx = loader.multiprocessing_context
        if ctx is None:
            ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                              else None)
        elif isinstance(ctx, str):
            ctx = multiprocessing.get_context(ctx)
        seed = int(_random.numpy_generator(loader.generator).integers(0, 2 ** 62))
        self._result_queue = ctx.Queue()
        self._index_queues = []
        self._workers = []
        for w in range(n):
            iq = ctx.Queue()
            proc = ctx.Process(target=_worker_loop, daemon=True,
                               args=(fetch, loader.dataset, iq, self._result_queue, w, n, seed + w,
                                     loader.worker_init_fn, self._iterable))
            proc.start()
            self._index_queues.append(iq)
            self._workers.append(proc)
        self._shutdown = False
        self._task_ids = itertools.count()  # never restarts: results of an abandoned pass are told apart
        self._passes = 0
        self.reset()

    def reset(self) -> None:
        """Start a new pass (the same workers)."""
        self._tasks = iter(self._loader._index_batches()) if not self._iterable else None
        if self._iterable and self._passes:
            for iq in self._index_queues:
                iq.put((-1, "reset"))
        self._passes += 1
        self._next_yield = next(self._task_ids)
        self._first_task = self._next_yield
        self._task_ids = itertools.chain([self._next_yield], self._task_ids)
        self._pending: dict[int, int] = {}  # task id -> worker
        self._done: dict[int, Any] = {}
        self._active = list(range(len(self._workers)))  # workers whose stream has not ended
        self._rr = itertools.cycle(range(len(self._workers)))
        self._exhausted = False
        for _ in range(self._loader.prefetch_factor * len(self._workers)):
            self._send()

    def _send(self) -> None:
        if self._exhausted or not self._active:
            return
        if self._iterable:
            worker = self._active[next(self._rr) % len(self._active)]
            indices = None
        else:
            indices = next(self._tasks, None)
            if indices is None:
                self._exhausted = True
                return
            worker = next(self._rr)
        task_id = next(self._task_ids)
        self._pending[task_id] = worker
        self._index_queues[worker].put((task_id, indices))

    def _get(self):
        timeout = self._loader.timeout
        waited = 0.0
        while True:
            try:
                return self._result_queue.get(timeout=_POLL_S)
            except queue.Empty:
                waited += _POLL_S
                for w, proc in enumerate(self._workers):
                    if not proc.is_alive():
                        code = proc.exitcode
                        self.shutdown()
                        raise RuntimeError(f"DataLoader worker {w} (pid {proc.pid}) exited unexpectedly with "
                                           f"exit code {code}") from None
                if timeout and waited >= timeout:
                    self.shutdown()
                    raise RuntimeError(f"DataLoader timed out after {timeout} seconds") from None

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            if self._next_yield not in self._pending:
                if not self._loader.persistent_workers:
                    self.shutdown()
                raise StopIteration
            while self._next_yield not in self._done:
                task_id, data = self._get()
                if isinstance(data, _WorkerError):
                    self.shutdown()
                    data.reraise()
                if task_id >= self._first_task:
                    self._done[task_id] = data
            data = self._done.pop(self._next_yield)
            worker = self._pending.pop(self._next_yield)
            self._next_yield += 1
            if isinstance(data, _IterableEnd):
                if worker in self._active:
                    self._active.remove(worker)
                self._send()
                continue
            self._send()
            return data

    def shutdown(self) -> None:
        if getattr(self, "_shutdown", True):  # already done, or __init__ never got to start workers
            return
        self._shutdown = True
        for iq in self._index_queues:
            try:
                iq.put(None)
            except (OSError, ValueError):
                pass
        for proc in self._workers:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=1)
        for q in self._index_queues + [self._result_queue]:
            q.cancel_join_thread()
            q.close()

    def __del__(self):
        self.shutdown()
