"""einsum: torch.einsum (string and sublist forms, ellipsis, repeated subscripts, implicit output)
lowered to tinyml's own ops, so that its backward is theirs.

    out[o] = sum over the labels not in o of  prod_k  operand_k[labels_k]

The lowering, in order:
1. a subscript repeated within one operand takes that operand's diagonal (`diagonal`, a view);
2. a label that appears in one operand only and not in the output is summed out there (`sum`);
3. the remaining operands are contracted two at a time, each pair as one batched matmul:
   A is permuted to (batch, left, contracted) and B to (batch, contracted, right), both reshaped
   to 3-D, multiplied with `matmul`, and the result reshaped to (batch..., left..., right...).
   A label shared by the pair is a batch label when the output or another remaining operand still
   needs it, and contracted (summed by the matmul) otherwise.
4. the last operand has its leftover labels summed and is permuted into the output order.

The order of the pairwise contractions (the "path") is chosen greedily, as opt_einsum's `greedy`
does: at each step, among the pairs of operands that share a label, contract the pair whose result
is smallest relative to its inputs (cost = size(result) - size(A) - size(B), ties broken by the
matmul's flop count); when no pair shares a label, take the two smallest operands (an outer product).
That is O(n^3) in the number of operands, exact for two or three, and avoids the huge intermediates
of the left-to-right order (e.g. 'ij,jk,kl->il' with a thin j contracts the thin side first).

Size-1 dims broadcast against the other operands' sizes of the same label (as torch does), by an
`expand` view whose backward is `sum_to`. Ellipsis dims are right-aligned across operands; absent
from an explicit output, they are summed, as torch sums them.
"""
from __future__ import annotations

import math

from ..tensor import Tensor
from .matmul import matmul

__all__ = ["einsum"]

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _sublist_to_equation(args) -> tuple[str, list]:
    """einsum(op0, sub0, op1, sub1, ..., [out]) -> ('ab,bc->ac', [op0, op1])."""
    def letters(sub) -> str:
        parts = []
        for s in sub:
            if s is Ellipsis:
                parts.append("...")
            elif isinstance(s, int) and 0 <= s < 52:
                parts.append(_LETTERS[s])
            else:
                raise ValueError(f"einsum(): expected subscript to be within the range [0, 52), but got "
                                 f"{s!r}")
        return "".join(parts)

    operands, subs = list(args[0::2]), list(args[1::2])
    out = None
    if len(operands) > len(subs):  # an odd count: the last item is the output sublist
        out = operands.pop()
    eq = ",".join(letters(s) for s in subs)
    if out is not None:
        eq += "->" + letters(out)
    return eq, operands


def _parse(equation: str, operands: list[Tensor]):
    """Per-operand label lists (ellipsis dims as ('...', j) tokens), the output labels and the size
    of each label after broadcasting."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ValueError("einsum(): more operands were provided than specified in the equation"
                         if len(operands) > len(terms) else
                         f"einsum(): fewer operands were provided than specified in the equation "
                         f"{equation!r} ({len(operands)} given, {len(terms)} in the equation)")
    raw = []
    for k, (term, op) in enumerate(zip(terms, operands)):
        if not isinstance(op, Tensor):
            raise TypeError(f"einsum(): operand {k} is a {type(op).__name__}, expected a Tensor")
        if term.count("...") > 1 or term.replace("...", "").count(".") > 0:
            raise ValueError(f"einsum(): found '.' for operand {k} that is not part of any ellipsis in "
                             f"{equation!r}")
        for c in term.replace("...", ""):
            if c not in _LETTERS:
                raise ValueError(f"einsum(): invalid subscript given at index {eq.index(c)} in the equation "
                                 f"string {equation!r}, subscripts must be in [a-zA-Z]")
        n_named = len(term.replace("...", ""))
        if "..." in term:
            if n_named > op.ndim:
                raise ValueError(f"einsum(): the number of subscripts in the equation ({n_named}) is more "
                                 f"than the number of dimensions ({op.ndim}) for operand {k}")
        elif n_named != op.ndim:
            raise ValueError(f"einsum(): the number of subscripts in the equation ({n_named}) does not "
                             f"match the number of dimensions ({op.ndim}) for operand {k} and no ellipsis "
                             f"was given")
        raw.append((term, op.ndim - n_named))
    n_ell = max((e for term, e in raw if "..." in term), default=0)
    ell = [("...", j) for j in range(n_ell)]
    labels = []
    for term, e in raw:
        before, _, after = term.partition("...")
        labels.append(list(before) + (ell[n_ell - e:] if "..." in term else []) + list(after))
    sizes: dict = {}
    for k, (lab, op) in enumerate(zip(labels, operands)):
        seen = {}
        for label, size in zip(lab, op.shape):
            if label in seen and seen[label] != size:
                raise RuntimeError(f"einsum(): subscript {label} is repeated for operand {k} but the sizes "
                                   f"don't match, {seen[label]} != {size}")
            seen[label] = size
            old = sizes.get(label, 1)
            if old != size and old != 1 and size != 1:
                name = "ellipsis dim" if isinstance(label, tuple) else f"subscript {label}"
                raise RuntimeError(f"einsum(): {name} has size {size} for operand {k} which does not "
                                   f"broadcast with previously seen size {old} (shapes "
                                   f"{[tuple(o.shape) for o in operands]})")
            sizes[label] = size if old == 1 else old
    if arrow:
        if rhs.count("...") > 1:
            raise ValueError(f"einsum(): found more than one ellipsis in the output of {equation!r}")
        before, has_ell, after = rhs.partition("...")
        out = list(before) + (ell if has_ell else []) + list(after)
        for c in before + after:
            if c not in _LETTERS:
                raise ValueError(f"einsum(): invalid subscript {c!r} in the output of {equation!r}")
            if c not in sizes:
                raise ValueError(f"einsum(): output subscript {c} does not appear in the equation for any "
                                 f"input operand")
            if (before + after).count(c) > 1:
                raise ValueError(f"einsum(): output subscript {c} appears more than once in the output")
    else:
        counts: dict = {}
        for lab in labels:
            for label in lab:
                counts[label] = counts.get(label, 0) + 1
        out = ell + sorted(c for c, n in counts.items() if n == 1 and isinstance(c, str))
    return labels, out, sizes


def _take_diagonals(x: Tensor, lab: list) -> tuple[Tensor, list]:
    """Collapse each repeated label of one operand onto its diagonal (moved to the last dim)."""
    while True:
        repeated = next((label for label in lab if lab.count(label) > 1), None)
        if repeated is None:
            return x, lab
        i = lab.index(repeated)
        j = lab.index(repeated, i + 1)
        x = x.diagonal(0, i, j)
        lab = [label for n, label in enumerate(lab) if n not in (i, j)] + [repeated]


def _sum_labels(x: Tensor, lab: list, drop: set) -> tuple[Tensor, list]:
    dims = tuple(n for n, label in enumerate(lab) if label in drop)
    if not dims:
        return x, lab
    return x.sum(dim=dims), [label for label in lab if label not in drop]


def _size(lab, sizes) -> int:
    return math.prod(sizes[label] for label in lab)


def _contract_pair(a: Tensor, la: list, b: Tensor, lb: list, keep: set, sizes) -> tuple[Tensor, list]:
    """One pairwise contraction as a batched matmul; `keep` holds the labels needed after it."""
    shared = [label for label in la if label in lb]
    batch = [label for label in shared if label in keep]
    summed = [label for label in shared if label not in keep]
    left = [label for label in la if label not in lb]
    right = [label for label in lb if label not in la]
    a = a.permute(*[la.index(label) for label in batch + left + summed])
    b = b.permute(*[lb.index(label) for label in batch + summed + right])
    nb, m, k, n = (_size(g, sizes) for g in (batch, left, summed, right))
    out = matmul(a.reshape(nb, m, k), b.reshape(nb, k, n))
    return out.reshape(*[sizes[label] for label in batch + left + right]), batch + left + right


def _greedy_pair(labels: list[list], keep_out: set, sizes) -> tuple[int, int]:
    """The pair opt_einsum's greedy strategy would contract next (see the module docstring)."""
    best, best_cost = None, None
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            li, lj = labels[i], labels[j]
            if not set(li) & set(lj):
                continue
            others = set(keep_out).union(*(labels[n] for n in range(len(labels)) if n not in (i, j)))
            result = [label for label in dict.fromkeys(li + lj) if label in others
                      or not (label in li and label in lj)]
            cost = (_size(result, sizes) - _size(li, sizes) - _size(lj, sizes),
                    _size(set(li) | set(lj), sizes))
            if best_cost is None or cost < best_cost:
                best, best_cost = (i, j), cost
    if best is None:  # no shared labels anywhere: an outer product of the two smallest
        order = sorted(range(len(labels)), key=lambda n: _size(labels[n], sizes))
        best = tuple(sorted(order[:2]))
    return best


def einsum(equation, *operands) -> Tensor:
    """torch.einsum(equation, *operands): also einsum(equation, [operands]) and the sublist form
    einsum(op0, [0, 1], op1, [1, 2], [0, 2]) (labels 0..51, Ellipsis allowed)."""
    if not isinstance(equation, str):
        equation, ops = _sublist_to_equation((equation,) + operands)
    else:
        ops = list(operands[0]) if len(operands) == 1 and isinstance(operands[0], (list, tuple)) \
            else list(operands)
    if not ops:
        raise ValueError("einsum(): must provide at least one operand")
    labels, out, sizes = _parse(equation, ops)
    # broadcast size-1 dims to the label's size (a view; its backward sums back to 1)
    tensors = []
    for op, lab in zip(ops, labels):
        target = [sizes[label] for label in lab]
        tensors.append(op.expand(*target) if list(op.shape) != target else op)
    out_set = set(out)
    for n in range(len(tensors)):
        tensors[n], labels[n] = _take_diagonals(tensors[n], labels[n])
    for n in range(len(tensors)):
        elsewhere = out_set.union(*(labels[m] for m in range(len(labels)) if m != n))
        tensors[n], labels[n] = _sum_labels(tensors[n], labels[n], set(labels[n]) - elsewhere)
    while len(tensors) > 1:
        i, j = _greedy_pair(labels, out_set, sizes)
        keep = out_set.union(*(labels[n] for n in range(len(labels)) if n not in (i, j)))
        merged, lab = _contract_pair(tensors[i], labels[i], tensors[j], labels[j], keep, sizes)
        tensors = [t for n, t in enumerate(tensors) if n not in (i, j)] + [merged]
        labels = [lb for n, lb in enumerate(labels) if n not in (i, j)] + [lab]
    x, lab = _sum_labels(tensors[0], labels[0], set(labels[0]) - out_set)
    perm = [lab.index(label) for label in out]
    return x.permute(*perm) if perm != list(range(len(perm))) else x
