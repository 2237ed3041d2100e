import pytest

import tinyml


def _graph():
    x = tinyml.randn(8, 16, requires_grad=True)
    w = tinyml.randn(16, requires_grad=True)
    return x, w, (x * w).tanh().softmax(-1).sum()


def test_graph_dot_lists_ops_leaves_and_saved_bytes():
    x, w, y = _graph()
    dot = tinyml.viz.graph(y, names={w: "w"})
    assert dot.startswith("digraph tinyml {") and dot.rstrip().endswith("}")
    for name in ("SumBackward", "SoftmaxBackward", "TanhBackward", "MulBackward", "ExpandBackward"):
        assert name in dot
    assert 'label="w\\n(16) float32"' in dot and "(8, 16) float32" in dot
    assert "saved 512 B" in dot  # tanh's output: 8 * 16 float32


@pytest.mark.skipif(tinyml.viz.dot_program() is None, reason="no Graphviz nor graphviz-pure installed")
def test_graph_renders_svg(tmp_path):
    _, _, y = _graph()
    path = tmp_path / "g.svg"
    tinyml.viz.graph(y, path=str(path))
    assert path.read_text().lstrip().startswith("<?xml")


def test_saved_bytes_counts_each_storage_once_and_drops_after_backward():
    x, w, y = _graph()
    # Mul saves x (512 B) and w's expand view (storage: w, 64 B); tanh and softmax save outputs.
    assert tinyml.memory.saved_bytes(y) == 512 + 64 + 512 + 512
    y.backward()
    assert tinyml.memory.saved_bytes(y) == 0


def test_saved_bytes_leaves_out_parameters():
    """The second linear saves its weight for the input's gradient: the module keeps that storage
    anyway, so only the activations count (first linear's input, GELU's input, second's input)."""
    model = tinyml.nn.Sequential(tinyml.nn.Linear(64, 32), tinyml.nn.GELU(), tinyml.nn.Linear(32, 16))
    y = model(tinyml.randn(8, 64)).sum()
    assert tinyml.memory.saved_bytes(y) == 8 * 64 * 4 + 8 * 32 * 4 + 8 * 32 * 4
    node = y.grad_fn.next_functions[0][0]  # the second linear, which saved (input, weight)
    while "Linear" not in node.name() and "Addmm" not in node.name():
        node = node.next_functions[0][0]
    assert tinyml.memory.node_saved_bytes(node) == 8 * 32 * 4


def test_track_reports_host_peak():
    with tinyml.memory.track() as m:
        a = tinyml.ones(1000, 1000)
        b = a * 2
        del a, b
    assert m.peak_host_bytes >= 2 * 4_000_000
    # None until a cuda tensor exists in this process; then 0, as this block allocated nothing there
    assert m.peak_device_bytes in (None, 0)
