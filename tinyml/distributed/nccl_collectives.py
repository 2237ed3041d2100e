"""The collectives of the nccl backend, on cuda tensors (collectives.py sends them here).

Tensors must be contiguous (as torch.distributed's NCCL backend requires). all_reduce,
reduce_scatter_tensor, all_gather_into_tensor and broadcast work in place on the tensors' device
memory; the list forms go through one contiguous temporary and device-to-device copies. Data that
is only moved (broadcast, all_gather) travels as bytes, so every dtype works; reductions need a
dtype NCCL reduces (nccl.NCCL_DTYPES). AVG is NCCL's own ncclAvg. A call returns once the
collective is queued: the default stream then waits for it (stream order, no host block), as in
torch; `async_op=True` returns a Work whose wait() adds that dependency and whose
is_completed() asks the done event.
"""
from __future__ import annotations

from ..backends import cuda
from ..backends.cuda_array import CudaArray
from ..tensor import Tensor
from .nccl import nccl_dtype, nccl_op

_BYTES = 1  # ncclUint8: data that is moved, not reduced


class NcclWork:
    """A queued NCCL collective (torch.distributed's Work)."""

    def __init__(self, comm, done, finish, keep: tuple):
        self._comm, self._done_event, self._finish = comm, done, finish
        self._keep = keep  # the tensors and temporaries the collective reads and writes, alive until wait
        self._done = done is None

    def is_completed(self) -> bool:
        return self._done or self._comm.query(self._done_event)

    def wait(self, timeout=None) -> bool:
        """Make the default stream wait for the collective (and run the copies back after it)."""
        if self._done_event is not None:
            self._comm.stream_wait(self._done_event)
            self._done_event = None
        self._done = True
        if self._finish is not None:
            self._finish()
            self._finish = None
        self._keep = ()
        return True

    def result(self):
        return None


def _array(tensor, what: str) -> CudaArray:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{what} expects a tinyml Tensor, got {type(tensor).__name__}")
    if tensor.device.type != "cuda":
        raise RuntimeError(f"{what}: the nccl backend works on cuda tensors; got a tensor on {tensor.device} "
                           "(use backend='mpi' for cpu tensors)")
    arr = tensor._data
    if not arr.is_contiguous():
        raise ValueError(f"{what}: the nccl backend needs contiguous tensors; got shape {list(arr.shape)} "
                         f"with strides {list(arr.element_strides())} (call .contiguous() first)")
    return arr


def _bump(*tensors) -> None:
    for t in tensors:
        t._version[0] += 1  # written in place: autograd's saved-tensor checks must see it


def _run(g, done, finish, keep: tuple, async_op: bool):
    work = NcclWork(g.nccl, done, finish, keep)
    if async_op:
        return work
    work.wait()
    return None


def all_reduce(g, tensor: Tensor, op, async_op: bool):
    arr = _array(tensor, "all_reduce")
    dtype, red = nccl_dtype(arr.dtype, "all_reduce"), nccl_op(op, arr.dtype, "all_reduce")
    n = arr.numel()
    done = g.nccl.all_reduce(arr.data_ptr(), arr.data_ptr(), n, dtype, red) if n else None
    return _run(g, done, lambda: _bump(tensor), (tensor,), async_op)


def broadcast(g, tensor: Tensor, src: int, async_op: bool):
    arr = _array(tensor, "broadcast")
    done = g.nccl.broadcast(arr.data_ptr(), arr.data_ptr(), arr.nbytes, _BYTES, src) if arr.nbytes else None
    return _run(g, done, lambda: _bump(tensor), (tensor,), async_op)


def all_gather(g, tensor_list: list, tensor: Tensor, async_op: bool):
    arr = _array(tensor, "all_gather")
    outs = [_array(t, "all_gather") for t in tensor_list]
    _check_list(outs, arr, g, "all_gather", "tensor_list", "the input")
    gathered = CudaArray.empty((g.size,) + arr.shape, arr.dtype)
    done = g.nccl.all_gather(arr.data_ptr(), gathered.data_ptr(), arr.nbytes, _BYTES) if arr.nbytes else None

    def finish():  # on the default stream, after the collective
        for r, (t, out) in enumerate(zip(tensor_list, outs)):
            cuda.copy_device_to_device(out.data_ptr(), gathered.data_ptr() + r * arr.nbytes, arr.nbytes)
            _bump(t)

    return _run(g, done, finish, (tensor, gathered, *tensor_list), async_op)


def all_gather_into_tensor(g, output: Tensor, input: Tensor, async_op: bool, check_shape):
    arr = _array(input, "all_gather_into_tensor")
    out = _array(output, "all_gather_into_tensor")
    check_shape(out, arr, g, "all_gather_into_tensor", "output_tensor", "input_tensor")
    done = g.nccl.all_gather(arr.data_ptr(), out.data_ptr(), arr.nbytes, _BYTES) if arr.nbytes else None
    return _run(g, done, lambda: _bump(output), (input, output), async_op)


def reduce_scatter(g, output: Tensor, input_list: list, op, async_op: bool):
    out = _array(output, "reduce_scatter")
    ins = [_array(t, "reduce_scatter") for t in input_list]
    _check_list(ins, out, g, "reduce_scatter", "input_list", "the output")
    stacked = CudaArray.empty((g.size,) + out.shape, out.dtype)
    for r, a in enumerate(ins):  # on the default stream: the collective is ordered after these copies
        cuda.copy_device_to_device(stacked.data_ptr() + r * out.nbytes, a.data_ptr(), out.nbytes)
    return _reduce_scatter(g, output, out, stacked, op, async_op, "reduce_scatter", (*input_list, stacked))


def reduce_scatter_tensor(g, output: Tensor, input: Tensor, op, async_op: bool, check_shape):
    out = _array(output, "reduce_scatter_tensor")
    arr = _array(input, "reduce_scatter_tensor")
    check_shape(arr, out, g, "reduce_scatter_tensor", "input", "output")
    return _reduce_scatter(g, output, out, arr, op, async_op, "reduce_scatter_tensor", (input,))


def _reduce_scatter(g, output: Tensor, out: CudaArray, stacked: CudaArray, op, async_op: bool, what: str,
                    keep: tuple):
    dtype, red = nccl_dtype(out.dtype, what), nccl_op(op, out.dtype, what)
    n = out.numel()
    done = g.nccl.reduce_scatter(stacked.data_ptr(), out.data_ptr(), n, dtype, red) if n else None
    return _run(g, done, lambda: _bump(output), (output, *keep), async_op)


def barrier(g, async_op: bool):
    """torch's NCCL barrier: a one-byte allreduce, then the host waits for the device (with the
    group's timeout, so that a dead peer gives an error rather than a hang)."""
    token = CudaArray.empty((1,), "uint8")
    cuda.memset(token.data_ptr(), 0, 1)
    done = g.nccl.all_reduce(token.data_ptr(), token.data_ptr(), 1, _BYTES, 0)
    g.nccl.stream_wait(done)
    g.nccl.synchronize(g.timeout_s, "barrier")
    cuda.synchronize()
    return _run(g, None, None, (), async_op)


def _check_list(arrays: list, like: CudaArray, g, what: str, name: str, like_name: str) -> None:
    if len(arrays) != g.size:
        raise ValueError(f"{what}: {name} has {len(arrays)} tensors; the world size is {g.size}")
    for r, a in enumerate(arrays):
        if a.shape != like.shape or a.dtype != like.dtype:
            raise ValueError(f"{what}: {name}[{r}] is {a.dtype.name}{list(a.shape)}; {like_name} is "
                             f"{like.dtype.name}{list(like.shape)}")
