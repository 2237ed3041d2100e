"""The DARTS supernet over 8x8 images and the discrete network that a genotype names.

A cell has one input node s_0 (the previous cell's output) and `num_nodes` intermediate nodes

    s_i = sum_{j < i} op_{j,i}(s_j)        (i = 1 .. num_nodes; num_nodes (num_nodes + 1) / 2 edges)

and outputs ReLU-conv1x1-BN(concat(s_1 .. s_n)), back to C channels. In the supernet op_{j,i} is a MixedOp
with weights softmax(alpha_{j,i} / T); every cell shares alpha (num_edges, num_ops), as DARTS's normal cells
do. The network: stem conv3x3 -> cell (8x8) -> 2x2 average pool -> cell (4x4) -> ... -> global average pool
-> Linear(C, 10).

Discretisation keeps, per edge, argmax over the non-zero operations of alpha (the genotype); the discrete
network has that single operation on every edge (with affine BatchNorm), trained from scratch.
"""
from __future__ import annotations

import math

import numpy as np

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F

from .operations import DEFAULT_PRIMITIVES, OPERATIONS, MixedOp, check_primitives, make_operation


def num_edges(num_nodes: int) -> int:
    return num_nodes * (num_nodes + 1) // 2


class _Cell(nn.Module):
    def __init__(self, channels: int, num_nodes: int, edge_op, affine: bool) -> None:
        super().__init__()
        self.num_nodes = num_nodes
        self.edges = nn.ModuleList([edge_op(k) for k in range(num_edges(num_nodes))])
        self.project = nn.Sequential(nn.ReLU(), nn.Conv2d(channels * num_nodes, channels, 1, bias=False),
                                     nn.BatchNorm2d(channels, affine=affine))

    def forward(self, x: tinyml.Tensor, weights: tinyml.Tensor | None = None) -> tinyml.Tensor:
        states, k = [x], 0
        for i in range(1, self.num_nodes + 1):
            total = None
            for j in range(i):
                edge = self.edges[k]
                out = edge(states[j], weights[k]) if weights is not None else edge(states[j])
                total = out if total is None else total + out
                k += 1
            states.append(total)
        return self.project(tinyml.cat(states[1:], dim=1))  # (N, C, H, W)


class _Backbone(nn.Module):
    def __init__(self, channels: int, num_cells: int, num_nodes: int, edge_op, affine: bool,
                 num_classes: int = 10) -> None:
        super().__init__()
        if num_cells < 1 or num_nodes < 1 or channels < 1:
            raise ValueError(f"channels, num_cells and num_nodes must be >= 1, got {channels}, {num_cells}, "
                             f"{num_nodes}")
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.cells = nn.ModuleList([_Cell(channels, num_nodes, edge_op, affine) for _ in range(num_cells)])
        self.classifier = nn.Linear(channels, num_classes)

    def _run(self, x: tinyml.Tensor, weights: tinyml.Tensor | None) -> tinyml.Tensor:
        h = self.stem(x)                                  # (N, C, 8, 8)
        for n, cell in enumerate(self.cells):
            if n > 0 and min(h.shape[2:]) >= 2:
                h = F.avg_pool2d(h, 2)                    # (N, C, H/2, W/2) between cells
            h = cell(h, weights) if weights is not None else cell(h)
        return self.classifier(h.mean(dim=(2, 3)))        # (N, 10)


class SearchNetwork(_Backbone):
    """The supernet: MixedOps on every edge, architecture parameters `alpha` and temperature T."""

    def __init__(self, channels: int = 8, num_cells: int = 2, num_nodes: int = 3, primitives=None,
                 temperature: float = 1.0, num_classes: int = 10) -> None:
        primitives = check_primitives(DEFAULT_PRIMITIVES if primitives is None else primitives)
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"the softmax temperature T must be a finite number > 0, got {temperature}")
        super().__init__(channels, num_cells, num_nodes, lambda k: MixedOp(channels, primitives),
                         affine=False, num_classes=num_classes)
        self.primitives, self.temperature, self.num_nodes = primitives, float(temperature), num_nodes
        self.alpha = nn.Parameter(tinyml.randn(num_edges(num_nodes), len(primitives)) * 1e-3)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name != "alpha"]

    def arch_weights(self) -> tinyml.Tensor:
        """softmax(alpha / T) over each edge's operations: (num_edges, num_ops)."""
        return F.softmax(self.alpha / self.temperature, dim=-1)

    def forward(self, x: tinyml.Tensor, weights: tinyml.Tensor | None = None) -> tinyml.Tensor:
        """x (N, 1, 8, 8); `weights` replaces softmax(alpha / T) (one-hot: the discretised supernet)."""
        return self._run(x, self.arch_weights() if weights is None else weights)

    def entropy(self) -> float:
        """Mean over edges of the entropy (nats) of the operation weights: log(num_ops) uniform, 0 one-hot."""
        w = self.arch_weights().detach().numpy().astype(np.float64)
        return float(np.mean(-(w * np.log(np.clip(w, 1e-30, None))).sum(axis=1)))

    def genotype(self) -> list[str]:
        """The operation kept on each edge: argmax of alpha over the non-zero operations."""
        a = self.alpha.detach().numpy().copy()
        a[:, [k for k, n in enumerate(self.primitives) if n == "none"]] = -np.inf
        return [self.primitives[k] for k in a.argmax(axis=1)]

    def one_hot_weights(self) -> tinyml.Tensor:
        """The genotype as weights for `forward`: 1 on each edge's kept operation, 0 elsewhere."""
        w = np.zeros((len(self.genotype()), len(self.primitives)), dtype=np.float32)
        for e, name in enumerate(self.genotype()):
            w[e, self.primitives.index(name)] = 1.0
        return tinyml.tensor(w)


class _SingleOpEdge(nn.Module):
    def __init__(self, name: str, channels: int) -> None:
        super().__init__()
        self.name, self.op = name, make_operation(name, channels, affine=True)

    def forward(self, x: tinyml.Tensor) -> tinyml.Tensor:
        return self.op(x)


class DiscreteNetwork(_Backbone):
    """The network a genotype names: one operation per edge, the supernet's layout, fresh weights."""

    def __init__(self, genotype, channels: int = 8, num_cells: int = 2, num_nodes: int = 3,
                 num_classes: int = 10) -> None:
        genotype = list(genotype)
        if len(genotype) != num_edges(num_nodes):
            raise ValueError(f"a genotype for {num_nodes} nodes names {num_edges(num_nodes)} edges, "
                             f"got {len(genotype)}: {genotype}")
        bad = [n for n in genotype if n not in OPERATIONS or n == "none"]
        if bad:
            allowed = sorted(set(OPERATIONS) - {"none"})
            raise ValueError(f"a genotype names non-zero operations from {allowed}, got {bad}")
        super().__init__(channels, num_cells, num_nodes, lambda k: _SingleOpEdge(genotype[k], channels),
                         affine=True, num_classes=num_classes)
        self.genotype = genotype

    def forward(self, x: tinyml.Tensor) -> tinyml.Tensor:
        return self._run(x, None)
