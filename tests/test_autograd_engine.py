"""The backward engine's named steps (docs/internals.md, section 7): Edge, count_consumers, run_node,
deliver_gradients, and the zero_grad helper that Module and Optimizer share."""
import ast
import os
import re

import numpy as np
import pytest
import torch

import tinyml
from tinyml import autograd
from tinyml.autograd import Edge, count_consumers, deliver_gradients, edge_to, run_node

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_next_edges_are_named_edges():
    x = tinyml.randn(3, requires_grad=True)
    w = tinyml.randn(1)
    parts = (x * 2).split(1)  # a multi-output node: edges name which output
    y = parts[2] * w + parts[0]
    mul, first = y.grad_fn.next_edges
    assert type(mul) is Edge and type(first) is Edge and mul.output_nr == 0
    assert first == Edge((parts[0].grad_fn, 0)) and first.node is parts[0].grad_fn
    assert mul.node.next_edges[0] == Edge((parts[2].grad_fn, 2)) == edge_to(parts[2])
    assert mul.node.next_edges[1] is None  # w does not require grad
    assert (x * 3).grad_fn.next_edges == (Edge((x, 0)), None) and edge_to(x) == (x, 0)
    assert repr(edge_to(x)).startswith("Edge(node=tensor(") and edge_to(x).output_nr == 0


def test_count_consumers_counts_edges_into_each_node():
    x = tinyml.randn(2, requires_grad=True)
    a = x.exp()
    b = a * a  # a consumed twice by one node
    c = a + b
    counts = count_consumers([c.grad_fn])
    assert counts[c.grad_fn] == 0 and counts[b.grad_fn] == 1
    assert counts[a.grad_fn] == 3  # two edges from MulBackward, one from AddBackward
    assert counts[x] == 1


def test_run_node_and_deliver_gradients_are_one_kahn_step():
    x = tinyml.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    node = y.grad_fn
    in_grads = run_node(node, [tinyml.ones(2)], retain_graph=True)
    assert [g.tolist() for g in in_grads] == [[1.0, 2.0], [1.0, 2.0]]  # g * b for a, g * a for b
    buffers, consumers, ready = {}, {x: 2}, []
    deliver_gradients(node.next_edges, in_grads, buffers, consumers, ready)
    assert buffers[x][0].tolist() == [2.0, 4.0] and consumers[x] == 0 and ready == [x]
    run_node(node, [tinyml.ones(2)], retain_graph=False)
    with pytest.raises(RuntimeError, match="a second time"):
        run_node(node, [tinyml.ones(2)], retain_graph=False)


def test_run_node_materializes_missing_output_gradients():
    x = tinyml.randn(4, requires_grad=True, dtype=tinyml.float64)
    a, b = x.split(2)
    in_grads = run_node(a.grad_fn, [tinyml.ones(2, dtype=tinyml.float64), None], retain_graph=True)
    assert in_grads[0].tolist() == [1.0, 1.0, 0.0, 0.0] and in_grads[0].dtype is tinyml.float64


def test_backward_runs_the_named_steps(monkeypatch):
    calls = []
    for name in ("count_consumers", "run_node", "deliver_gradients"):
        real = getattr(autograd, name)
        monkeypatch.setattr(autograd, name, lambda *a, _n=name, _f=real, **k: calls.append(_n) or _f(*a, **k))
    x = tinyml.randn(3, requires_grad=True)
    (x.exp() * 2).sum().backward()
    assert calls == ["count_consumers"] + ["run_node", "deliver_gradients"] * 3
    xt = torch.tensor(x.detach().numpy(), requires_grad=True)
    (xt.exp() * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_helper_like_torch(set_to_none):
    x, xt = tinyml.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    unused = tinyml.ones(2, requires_grad=True)
    (x * x).sum().backward(create_graph=True)
    (xt * xt).sum().backward(create_graph=True)
    grad = x.grad
    autograd.zero_grad([x, unused], set_to_none)
    torch.optim.SGD([xt], lr=0.1).zero_grad(set_to_none)
    assert unused.grad is None
    if set_to_none:
        assert x.grad is None and xt.grad is None
    else:
        assert x.grad.tolist() == xt.grad.tolist() == [0.0, 0.0, 0.0]
        assert x.grad.grad_fn is None and not x.grad.requires_grad and xt.grad.grad_fn is None
        assert grad.grad_fn is not None  # detached first: the graph-carrying gradient is not written


def test_module_and_optimizer_zero_grad_use_the_helper(monkeypatch):
    seen = []
    monkeypatch.setattr(autograd, "zero_grad", lambda tensors, set_to_none: seen.append(list(tensors)))
    model = tinyml.nn.Linear(2, 2)
    model.zero_grad()
    tinyml.optim.SGD(model.parameters(), lr=0.1).zero_grad()
    assert [len(s) for s in seen] == [2, 2]


def _clones(program):
    calls = []

    def record(fn, name, backend):
        def recorded(*args, **kwargs):
            out = fn(*args, **kwargs)
            if out is not NotImplemented:  # a cpu kernel that declines hands the copy to the reference
                calls.append(name)
            return out
        return recorded

    tinyml.backends._wrappers.append(record)
    tinyml.backends.clear_cache()
    try:
        program()
    finally:
        tinyml.backends._wrappers.remove(record)
        tinyml.backends.clear_cache()
    return calls.count("clone")


def test_a_leaf_takes_a_fresh_gradient_without_copying_it():
    x = tinyml.tensor([[1.0, -2.0], [3.0, 0.5]], requires_grad=True)
    assert _clones(lambda: (x * 3.0).sum().backward()) == 0  # g * 3 is fresh: x.grad is that tensor
    assert x.grad.tolist() == [[3.0, 3.0], [3.0, 3.0]]
    x.grad = None
    assert _clones(lambda: x.sum().backward()) == 1  # sum's gradient is an expanded view: copied
    assert x.grad.tolist() == [[1.0, 1.0], [1.0, 1.0]] and x.grad._data.flags.writeable
    x.grad = None
    given = tinyml.ones(2, 2)
    assert _clones(lambda: x.backward(given)) == 1  # the caller still holds it: copied
    x.grad.add_(1.0)
    assert given.tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_internals_backward_steps_are_what_backward_calls():
    """Section 7 names backward's steps; each is a function tinyml.autograd.backward calls, in that order."""
    with open(os.path.join(ROOT, "docs/internals.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## 7. "):text.index("## 8. ")]
    steps = re.findall(r"^\d\. \*\*[^*]+\*\* `tinyml\.autograd\.(\w+)`", section, re.MULTILINE)
    assert len(steps) >= 4, f"docs/internals.md section 7 no longer lists backward's steps: {steps}"
    with open(os.path.join(ROOT, "tinyml/autograd.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "backward")
    nodes = sorted((n for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)),
                   key=lambda n: (n.lineno, n.col_offset))  # source order
    calls = [n.func.id for n in nodes]
    assert [c for c in calls if c in steps] == steps, f"backward calls {calls}; the page says {steps}"
