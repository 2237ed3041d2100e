"""The autograd graph behind a tensor, as Graphviz DOT text (and SVG/PNG where Graphviz's `dot` exists).

    dot = tinyml.viz.graph(loss)                 # a string in the DOT language
    tinyml.viz.graph(loss, path="loss.svg")      # also renders it (needs Graphviz's `dot`)

Boxes are backward nodes (the op that made a tensor), with the bytes they saved for backward;
ellipses are leaf tensors (parameters and inputs that require grad) with shape and dtype. Edges
point the way the forward pass went, from inputs to the op that consumed them.
"""
from __future__ import annotations

import shutil
import subprocess

from .memory import _walk, node_saved_bytes
from .tensor import Tensor


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _shape(t: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def graph(tensor: Tensor, path: str | None = None, names: dict | None = None) -> str:
    """DOT text for the graph behind `tensor`; with `path` ending in .svg/.png, also render it.

    `names` maps tensors (e.g. `dict(model.named_parameters())` inverted, or {param: "w"}) to
    labels; by default `named_parameters()` names are not known and leaves show shape only.
    """
    labels = {}
    if names:
        for k, v in names.items():
            t, name = (v, k) if isinstance(v, Tensor) else (k, v)
            labels[id(t)] = name
    lines = ["digraph tinyml {", '  rankdir=BT; node [fontname="Helvetica", fontsize=10];']
    out_id = f"out{id(tensor)}"
    lines.append(f'  {out_id} [label="output\\n{_shape(tensor)} {tensor.dtype.name}", shape=ellipse, '
                 'style=filled, fillcolor="#c6e2ff"];')
    if tensor.grad_fn is not None:
        lines.append(f"  n{id(tensor.grad_fn)} -> {out_id};")
    leaves = {}
    for node in _walk(tensor):
        saved = node_saved_bytes(node)
        extra = f"\\nsaved {_fmt_bytes(saved)}" if saved else ""
        meta = node.__dict__.get("_output_meta")
        if meta:
            extra += "\\n" + " ".join("(" + ", ".join(map(str, m[0])) + ")" for m in meta)
        lines.append(f'  n{id(node)} [label="{node.name()}{extra}", shape=box, style=filled, '
                     'fillcolor="#f5f5f5"];')
        for e in node.next_edges:
            if e is None:
                continue
            src = e[0]
            if isinstance(src, Tensor):
                leaves[id(src)] = src
                lines.append(f"  t{id(src)} -> n{id(node)};")
            else:
                lines.append(f"  n{id(src)} -> n{id(node)};")
    for tid, leaf in leaves.items():
        name = labels.get(tid, "")
        label = (name + "\\n" if name else "") + f"{_shape(leaf)} {leaf.dtype.name}"
        lines.append(f'  t{tid} [label="{label}", shape=ellipse, style=filled, fillcolor="#d9f2d9"];')
    lines.append("}")
    dot = "\n".join(lines)
    if path is not None:
        render(dot, path)
    return dot


def dot_program() -> str | None:
    """Graphviz's `dot`, or the `graphviz-pure` port of it (pip), whichever is installed."""
    return shutil.which("dot") or shutil.which("graphviz-pure")


def render(dot: str, path: str) -> str:
    """Render DOT text to `path` (format from its extension) with Graphviz's `dot` program."""
    exe = dot_program()
    if exe is None:
        raise RuntimeError("rendering needs Graphviz's `dot` program (Debian: apt-get install graphviz, or "
                           "pip install graphviz-pure); the DOT text itself is returned by tinyml.viz.graph "
                           "without it")
    fmt = path.rsplit(".", 1)[-1].lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"render: unsupported format {fmt!r} for {path!r}; use .svg, .png or .pdf")
    subprocess.run([exe, f"-T{fmt}", "-o", path], input=dot.encode(), check=True)
    return path
