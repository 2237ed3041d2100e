"""Steps of the backward engine (tinyml/autograd.py's `backward`), kept here so that the engine
file stays readable: the seed (`root_gradients`, with `edge_to` and `_new_buffer`), step 1
(`count_consumers`) and `run_and_deliver`, run_node and deliver_gradients in one call for the
common node.

    root_gradients(tensors, g)    [(edge_to(t), gradient)]: the gradient given, checked, or ones
    count_consumers(roots)        {node: edges into it}, over the graph reachable from roots
    run_and_deliver(node, ...)    a node with one output gradient, no pre-hooks, grad off
                                  (create_graph=False), and no observer (anomaly mode, profiler)

`tinyml.autograd` imports them; nothing here reads its grad mode.
"""
from __future__ import annotations

from ._grad_checks import gradient_tuple, root_gradient
from ._graph import Context, Edge
from .backends import run2
from .tensor import Tensor


def edge_to(t: Tensor) -> Edge:
    """The edge a gradient for tensor `t` follows: to its grad_fn's output, or to the leaf itself."""
    return Edge((t.grad_fn, t._output_nr)) if t.grad_fn is not None else Edge((t, 0))


def _new_buffer(node) -> list:
    """A node's gradient slots: one per output of a Context, one for a leaf."""
    return [None] * (1 if type(node) is Tensor else node._n_outputs)


def root_gradients(tensors: tuple, grad_tensors) -> list:
    """[(edge_to(t), gradient)] for each tensor backward starts from: the given gradient (checked,
    cast to t's dtype) or, for a one-element tensor, ones."""
    grad_tensors = gradient_tuple(grad_tensors, len(tensors), Tensor)
    roots = []
    for k, (t, g) in enumerate(zip(tensors, grad_tensors)):
        if not t.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn: call "
                               "requires_grad_() on a leaf, or compute the tensor outside tinyml.no_grad()")
        if g is None:
            if t.numel() != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; got shape "
                                   f"{tuple(t.shape)}: pass a gradient of that shape to backward()")
            g = t.new_ones(t.shape)
        else:
            g = root_gradient(t, g, k)
        roots.append((edge_to(t), g))
    return roots


def count_consumers(roots) -> dict:
    """Step 1. For every node reachable from `roots` (Contexts and leaf tensors), how many edges
    point at it: an iterative depth-first walk over `Context.next_edges`."""
    consumers: dict = {}
    stack = []
    for node in roots:
        if node not in consumers:
            consumers[node] = 0
            if type(node) is not Tensor:
                stack.append(node)
    get = consumers.get
    while stack:
        for edge in stack.pop().next_edges:
            if edge is None:
                continue
            child = edge[0]  # edge.node; indexing is faster on this path
            n = get(child)
            if n is None:
                consumers[child] = 1
                if type(child) is not Tensor:  # a leaf has no edges to follow
                    stack.append(child)
            else:
                consumers[child] = n + 1
    return consumers


def run_and_deliver(node: Context, grad: Tensor, retain_graph: bool, buffers: dict, consumers: dict,
                    ready: list) -> None:
    """run_node then deliver_gradients for a node with one output gradient `grad`, no pre-hooks,
    grad off: the same steps in one call, without the cases that cannot arise. A child with one
    output that only this edge feeds (one consumer) is made ready at once with its gradient as the
    buffer entry itself, a Tensor instead of a one-slot list (the engine's loop takes both).

    When the last child made ready is such a node of the same kind (a Context, no pre-hooks, not
    freed), it is the node the engine's loop would pop next and hand back here: it runs in this
    call's loop instead, without the trip through `ready` and `buffers` (a chain of ops, as most of
    a graph is, runs in one call). The order of the nodes is the engine's."""
    while True:
        in_grads = node.fn.backward(node, grad)
        if type(in_grads) is not tuple:
            in_grads = (in_grads,)
        edges = node.next_edges
        if len(in_grads) < len(edges):
            raise RuntimeError(f"{node.name()} returned {len(in_grads)} gradients for {len(edges)} inputs")
        if not retain_graph:
            saved = node.__dict__  # Context.release, for a node with one output and no hooks
            if "materialize_grads" in saved:
                node.release()
            else:
                saved.clear()
                saved["_freed"] = True
        node = None  # the next node of the chain, if any: the last child made ready, held back
        for edge, g in zip(edges, in_grads):
            if edge is None:
                continue
            child, i = edge
            buf = buffers.get(child)
            if buf is None:
                if consumers[child] == 1:  # the only consumer: nothing to sum, the child is ready now
                    if node is not None:  # the one held back was not the last: ready it as before
                        buffers[node] = grad
                        ready.append(node)
                    if g is not None and (type(child) is Tensor or child._n_outputs == 1):
                        node, grad = child, g  # the entry itself, no slot list (autograd.backward's loop)
                        continue
                    node = None
                    if type(child) is Tensor or child._n_outputs == 1:
                        buffers[child] = [g]
                    else:
                        buf = buffers[child] = [None] * child._n_outputs
                        buf[i] = g
                    ready.append(child)
                    continue
                buf = buffers[child] = [None] * (1 if type(child) is Tensor else child._n_outputs)
            if g is not None:
                have = buf[i]
                if have is None:
                    buf[i] = g
                elif have.dtype is g.dtype and have._data.shape == g._data.shape:
                    buf[i] = run2("add", have, g)  # what `have + g` runs here, without its promotion and node
                else:
                    buf[i] = have + g
            left = consumers[child] - 1
            consumers[child] = left
            if not left:
                if node is not None:
                    buffers[node] = grad
                    ready.append(node)
                    node = None
                ready.append(child)
        if node is None:
            return
        if type(node) is Tensor or node._pre_hooks is not None or node._freed:
            buffers[node] = grad  # a leaf, or a node the engine's loop runs its own way
            ready.append(node)
            return
