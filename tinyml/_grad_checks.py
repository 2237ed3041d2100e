"""The checks autograd makes on gradients that come from user code, as PyTorch makes them:

    x.grad = g        g is None or a Tensor with x's device, dtype and shape. A non-Tensor raises
                      TypeError; a mismatch raises RuntimeError naming both values.
    y.backward(g)     g (and each grad_outputs of autograd.grad) is None or a Tensor (TypeError)
                      of y's shape and device (RuntimeError naming both), one per output (torch
                      ignores extra ones; tinyml raises naming both counts). Another dtype is cast
                      to y's: torch's engine casts every incoming gradient to its tensor's dtype.
    hook(g) -> h      h is None (keep g) or a Tensor (TypeError naming the hook and the type it
                      returned) with g's shape, dtype and device (RuntimeError naming the hook and
                      both values): torch refuses a hook that changes them instead of casting.

Tensor is not imported here (tensor.py imports this module): a gradient must be an instance of
its tensor's own class (Tensor for every tensor, parameters included), or of the class backward
passes in.
"""
from __future__ import annotations


def _same_device(a, b) -> bool:
    return a is b or a == b


def check_grad_assignment(t, g) -> None:
    """Raise unless `g` (not None) may be stored as `t.grad`."""
    if not isinstance(g, type(t)):
        raise TypeError("assigned grad expected to be a Tensor or None but got grad of type "
                        f"{type(g).__name__}")
    if not _same_device(g.device, t.device):
        raise RuntimeError(f"attempting to assign a gradient on device {g.device} to a tensor on device "
                           f"{t.device}; the gradient and the tensor must be on the same device")
    if g.dtype is not t.dtype:
        raise RuntimeError(f"attempting to assign a gradient of dtype {g.dtype} to a tensor of dtype "
                           f"{t.dtype}; a gradient has the dtype of its tensor")
    if g.shape != t.shape:
        raise RuntimeError(f"attempting to assign a gradient of shape {tuple(g.shape)} to a tensor of shape "
                           f"{tuple(t.shape)}; the gradient and the tensor must have the same shape")


def gradient_tuple(grad_tensors, n: int, tensor_type) -> tuple:
    """backward()'s `grad_tensors` (None, one Tensor, or a list/tuple of Tensors or None) as one
    entry per output. Like torch, the type of every entry is checked before their number."""
    if grad_tensors is None:
        return (None,) * n
    grads = tuple(grad_tensors) if type(grad_tensors) in (list, tuple) else (grad_tensors,)
    for k, g in enumerate(grads):
        if g is not None and not isinstance(g, tensor_type):
            raise TypeError(f"backward: gradients must be Tensors or None, got {type(g).__name__} for output "
                            f"{k}")
    if len(grads) != n:
        raise RuntimeError(f"backward: got {n} tensors and {len(grads)} gradients")
    return grads


def root_gradient(t, g, k: int):
    """The gradient `g` given for output `t` (the k-th) of backward(), checked; in t's dtype."""
    if g.shape != t.shape:
        raise RuntimeError(f"backward: mismatch in shape: gradient {k} has shape {tuple(g.shape)} and "
                           f"output {k} has shape {tuple(t.shape)}")
    if not _same_device(g.device, t.device):
        raise RuntimeError(f"backward: gradient {k} is on device {g.device} but output {k} is on device "
                           f"{t.device}")
    return g if g.dtype is t.dtype else g.to(t.dtype)


def _hook_name(hook) -> str:
    return getattr(hook, "__qualname__", None) or repr(hook)


def run_hooks(hooks, grad):
    """Call each hook on the gradient in turn; a Tensor it returns replaces the gradient."""
    for hook in hooks:
        new = hook(grad)
        if new is None:
            continue
        if not isinstance(new, type(grad)):
            raise TypeError(f"hook '{_hook_name(hook)}' returned {type(new).__name__}; a tensor hook must "
                            "return a Tensor or None")
        for what, was, got in (("shape", grad.shape, new.shape), ("dtype", grad.dtype, new.dtype),
                               ("device", grad.device, new.device)):
            if got is not was and got != was:
                raise RuntimeError(f"hook '{_hook_name(hook)}' changed the gradient's {what} from {was} "
                                   f"to {got}")
        grad = new
    return grad
