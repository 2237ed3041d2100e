"""Running a kernel on tensors: unwrap to backend arrays, dispatch on the device, wrap results."""
from __future__ import annotations

from ..backends import _cache as _kernel_cache  # (name, device type) -> kernel; cleared in place
from ..backends import dispatch
from ..device import device as Device
from ..tensor import Tensor


def _device_error(a: Device, b: Device, name: str) -> RuntimeError:
    return RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, {a} and "
                        f"{b} (in kernel {name!r})")


def run(name: str, *args, **kwargs):
    """Run kernel `name` on the device of its tensor arguments (tensors, lists of tensors, or
    plain values). Array results come back as tensors; a tuple of results as a tuple."""
    dev = None
    arrays = []
    for a in args:
        kind = type(a)
        if kind is Tensor:
            d = a.device
            if dev is None:
                dev = d
            elif d is not dev and d != dev:
                raise _device_error(dev, d, name)
            arrays.append(a._data)
        elif (kind is list or kind is tuple) and a and type(a[0]) is Tensor:
            for t in a:
                if dev is None:
                    dev = t.device
                elif t.device is not dev and t.device != dev:
                    raise _device_error(dev, t.device, name)
            arrays.append([t._data for t in a])
        else:
            arrays.append(a)
    if dev is None:
        raise TypeError(f"kernel {name!r} called without a tensor argument; use run_on(device, ...)")
    fn = _kernel_cache.get((name, dev.type)) or dispatch(name, dev.type)
    out = fn(*arrays, **kwargs) if kwargs else fn(*arrays)
    kind = type(out)
    if kind is tuple or kind is list or out is None:
        return _wrap(out, dev)
    return Tensor._make(out, dev)


def run_on(dev: Device, name: str, *args, **kwargs):
    """Run a kernel that takes no tensors (creation kernels) on device `dev`."""
    return _wrap(dispatch(name, dev.type)(*args, **kwargs), dev)


def _wrap(out, dev: Device):
    if type(out) is tuple:
        return tuple(None if o is None else Tensor._make(o, dev) for o in out)
    if type(out) is list:
        return [Tensor._make(o, dev) for o in out]
    if out is None:
        return None
    return Tensor._make(out, dev)
