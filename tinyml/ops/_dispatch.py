"""Running a kernel on tensors: unwrap to backend arrays, dispatch on the device, wrap results."""
from __future__ import annotations

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
        if type(a) is Tensor:
            if dev is None:
                dev = a.device
            elif a.device is not dev and a.device != dev:
                raise _device_error(dev, a.device, name)
            arrays.append(a._data)
        elif type(a) in (list, tuple) and a and type(a[0]) is Tensor:
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
    return _wrap(dispatch(name, dev.type)(*arrays, **kwargs), dev)


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
