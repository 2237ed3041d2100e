"""How a leaf tensor's `.grad` takes the gradient the backward engine (tinyml/autograd.py)
delivers to it: checked against the leaf's shape, cast to its dtype, passed through its hooks,
then owned by the leaf or added to what it has, as PyTorch's AccumulateGrad node does.
"""
from __future__ import annotations

import sys

import numpy as np

from ._grad_checks import run_hooks


def _exclusively_owned(grad) -> bool:
    """True when `grad` (a cpu tensor) and its array are referenced only by the backward engine's
    buffer: not a view, not an array shared with another tensor, not held anywhere else."""
    arr = grad._data
    # references to grad: the engine's buffer list, the caller's argument, this argument, getrefcount's;
    # to arr: grad._data, the local `arr`, getrefcount's
    return (grad._base is None and grad.grad_fn is None and type(arr) is np.ndarray and arr.base is None
            and sys.getrefcount(grad) <= 4 and sys.getrefcount(arr) <= 3 and arr.flags.writeable
            and arr.flags.c_contiguous)


def _accumulate_leaf(leaf, grad, create_graph: bool) -> None:
    if grad.shape != leaf.shape:
        raise RuntimeError(f"gradient of shape {tuple(grad.shape)} does not match leaf of shape "
                           f"{tuple(leaf.shape)}")
    if grad.dtype is not leaf.dtype:  # a Function's backward gave another dtype: torch's engine casts it
        grad = grad.to(leaf.dtype)
    if leaf._hooks:
        grad = run_hooks(leaf._hooks, grad)
    if leaf._grad is None:
        # The leaf owns its .grad: never an alias of a gradient that flowed elsewhere too. A fresh
        # gradient nothing else refers to is taken as it is (PyTorch's AccumulateGrad steals a
        # gradient whose use count is 1); anything shared is copied.
        if not create_graph and _exclusively_owned(grad):
            leaf._grad = grad
        else:
            leaf._grad = grad.clone() if create_graph else grad.detach().clone()
    else:
        leaf._grad = leaf._grad + grad if create_graph else (leaf._grad + grad).detach()
