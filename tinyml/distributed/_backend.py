"""The MPI process group: mpi4py loaded on first use, the world communicator, timed waits.

Every collective is posted non-blocking (MPI_I*) and completed by `Work.wait`, which polls
`MPI_Testall` against the group's timeout, so that a peer that died or hangs gives this rank a
RuntimeError naming the collective instead of an endless wait. The one exception is the
synchronous all_reduce of a contiguous buffer, the call a training loop makes most: it is a
blocking MPI_Allreduce (the non-blocking path costs a few microseconds of Python per call), bounded
by the watchdog thread below, which ends the job (MPI_Abort, after printing which collective
timed out) when a blocking call outlives the timeout, as torch's NCCL watchdog does.
A group that timed out is marked broken: at interpreter exit it calls MPI_Abort, because
MPI_Finalize would wait forever for the dead peer's half of the unfinished request.
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
import time

from . import native_mpi

_INSTALL_HINT = "pip install mpi4py mpich"
DEFAULT_TIMEOUT_S = 1800.0  # torch.distributed's default process-group timeout: 30 minutes


class _Group:
    """The default (world) process group."""

    def __init__(self, backend: str, comm, timeout_s: float):
        self.backend = backend
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.timeout_s = timeout_s
        self.broken = None  # the message of the collective that timed out, once one has
        self.nccl = None  # the NCCL Communicator of the nccl backend (the MPI comm then only bootstraps)


_group: _Group | None = None
_timed_out = False  # set for good by the first collective that timed out (outlives destroy_process_group)


_MPI = None


def mpi():
    """The mpi4py.MPI module, imported on first use (importing it initialises MPI)."""
    global _MPI
    if _MPI is not None:
        return _MPI
    try:
        from mpi4py import MPI
    except ImportError as exc:  # the module or its libmpi
        raise RuntimeError(f"tinyml.distributed's mpi backend needs mpi4py and an MPI library "
                           f"({exc}); install them with `{_INSTALL_HINT}` "
                           "(or `pip install 'tinyml[distributed]'`)") from exc
    _MPI = MPI
    return MPI


def group() -> _Group:
    if _group is None:
        raise RuntimeError("Default process group has not been initialized, please make sure to call "
                           "tinyml.distributed.init_process_group(backend=\"mpi\") first")
    if _group.broken is not None:
        raise RuntimeError(f"the process group is broken: an earlier collective timed out ({_group.broken})")
    return _group


def _abort_if_broken() -> None:
    if _timed_out:
        mpi().COMM_WORLD.Abort(1)


def set_group(g: _Group | None) -> None:
    global _group
    _group = g
    if g is None:
        native_mpi.disable()


def mark_broken(g: _Group, message: str) -> None:
    """A collective of `g` timed out: every later call raises `message` (the C all_reduce declines,
    so that it is the Python path that raises)."""
    global _timed_out
    g.broken, _timed_out = message, True
    native_mpi.disable()


atexit.register(_abort_if_broken)


def abort_on_uncaught_exception() -> None:
    """After the traceback of an exception nothing caught, MPI_Abort: the other ranks would
    otherwise wait in their next collective (or this rank in MPI_Finalize) for the group's timeout
    (what `python -m mpi4py` does for a script)."""
    previous = sys.excepthook
    if getattr(previous, "_tinyml_aborts", False):
        return

    def hook(kind, value, tb):
        previous(kind, value, tb)
        if _group is not None and _group.size > 1:
            sys.stderr.flush()
            time.sleep(0.25)  # as in the watchdog: the traceback must reach the launcher before the abort
            mpi().COMM_WORLD.Abort(1)

    hook._tinyml_aborts = True
    sys.excepthook = hook


class _Watchdog:
    """Bounds the blocking collectives: the caller sets `busy` to a fresh (name, op, array) tuple
    before the MPI call and to None after it (the C call of native_mpi.py keeps the same record in
    C, read through native_mpi.busy()); a daemon thread looks every `poll_s` seconds and aborts the
    job once the same call has been busy for longer than the group's timeout. (A thread cannot
    interrupt a blocking MPI call; mpi4py and the C call release the GIL inside it, so this one runs.
    Two stores per call and no clock read: the caller's cost is what the fast path is for.)"""

    def __init__(self):
        self.busy = None
        self.poll_s = 1.0
        self._thread = None

    def start(self, timeout_s: float) -> None:
        self.poll_s = min(1.0, timeout_s / 4)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tinyml-distributed-watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        seen, since = None, 0.0
        while True:
            time.sleep(self.poll_s)
            busy, g, now = self.busy, _group, time.monotonic()
            key = busy
            if busy is None:  # the C call (native_mpi.py): (its sequence number, op, array) while in flight
                found = native_mpi.busy()
                if found is not None:
                    key, busy = found[0], ("all_reduce", found[1], found[2])
            if busy is None or g is None:
                seen = None
            elif not (key is seen or (type(key) is int and key == seen)):
                seen, since = key, now  # a new call (a tuple held in `seen` keeps its id from being reused)
            elif now - since > g.timeout_s:
                name, op, arr = busy
                what = f"{name}({op}) of {arr.dtype.name}{list(arr.shape)}"
                sys.stderr.write(f"tinyml.distributed: rank {g.rank}/{g.size}: {what} did not complete "
                                 f"within {g.timeout_s:g} s; a peer rank has probably died or is stuck (pid "
                                 f"{os.getpid()}); ending the job with MPI_Abort (a blocking collective "
                                 "cannot be interrupted; async_op=True gives a RuntimeError instead)\n")
                sys.stderr.flush()
                time.sleep(0.25)  # MPI_Abort ends the launcher's stderr forwarding: let the line out first
                _MPI.COMM_WORLD.Abort(1)


watchdog = _Watchdog()


class Work:
    """A launched collective (torch.distributed's Work): `wait()` blocks until it is done, then
    runs its finishing step (copy back, divide for AVG, cast back from the wire dtype). `what`
    describes the collective for a timeout's error: a string, or a function giving it (built only
    then: formatting dtypes and shapes costs more than a small allreduce)."""

    def __init__(self, requests: list, finish, what):
        self._requests = requests
        self._finish = finish
        self._what = what
        self._done = False

    def is_completed(self) -> bool:
        if not self._done and mpi().Request.Testall(self._requests):
            self._complete()
        return self._done

    def wait(self, timeout=None) -> bool:
        """Block until the collective is done; RuntimeError after `timeout` (seconds or a
        timedelta; default: the group's timeout)."""
        if self._done:
            return True
        test_all = _MPI.Request.Testall
        spins = 0
        # Spin first (a collective on one machine finishes in micro- to milliseconds), then back off
        # to short sleeps so that a rank waiting on a slow peer leaves the cores to it.
        while not test_all(self._requests):
            spins += 1
            if spins == 1:
                g = _group
                limit = timeout.total_seconds() if hasattr(timeout, "total_seconds") else timeout
                limit = g.timeout_s if limit is None else limit
                start = time.perf_counter()
            elif spins > 2000:
                elapsed = time.perf_counter() - start
                if elapsed > limit:
                    what = self._what() if callable(self._what) else self._what
                    message = (f"rank {g.rank}/{g.size}: {what} did not complete within {limit:g} s; "
                               "a peer rank has probably died or is stuck (pid "
                               f"{os.getpid()})")
                    mark_broken(g, message)
                    raise RuntimeError(message)
                time.sleep(min(1e-3, 1e-5 * (spins - 2000)))
        self._complete()
        return True

    def _complete(self) -> None:
        self._done = True
        if self._finish is not None:
            self._finish()
            self._finish = None

    def result(self):
        return None
