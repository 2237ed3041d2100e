"""einsum (ops/einsum.py) against torch.einsum, forward and backward, on many equations; gradcheck in
float64; the greedy contraction path; torch's errors."""
import numpy as np
import pytest
import torch
from helpers import check_op

import tinyml
from tinyml.ops.einsum import _greedy_pair
from tinyml.testing import gradcheck

CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),  # implicit output: ik
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),  # trace
    ("iji->j", [(3, 2, 3)]),
    ("i,i->", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
    ("...ij,...jk", [(2, 1, 3, 4), (3, 4, 5)]),
    ("i...->...", [(3, 2, 4)]),
    ("...ij->ij", [(2, 3, 4)]),  # ellipsis dims summed when absent from the output
    ("ij,jk,kl->il", [(3, 4), (4, 2), (2, 5)]),
    ("ab,bc,cd,de->ae", [(2, 3), (3, 4), (4, 3), (3, 2)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("ij,ij->i", [(3, 4), (3, 4)]),
    ("i,i,i->i", [(4,), (4,), (4,)]),
    ("ijk,ikl,lm->jm", [(2, 3, 4), (2, 4, 5), (5, 3)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),  # bilinear
    ("ij,kl->ijkl", [(2, 3), (4, 1)]),
    ("i,i->i", [(3,), (1,)]),  # a size-1 dim broadcasts
    ("Ab,bC->AC", [(2, 3), (3, 4)]),
    ("ba", [(3, 4)]),  # implicit output sorts labels: ab
    ("ijj,jk->ik", [(2, 3, 3), (3, 4)]),
    ("ij,i,j->", [(3, 4), (3,), (4,)]),
]


@pytest.mark.parametrize("eq,shapes", CASES, ids=[c[0] for c in CASES])
def test_einsum_matches_torch(eq, shapes):
    check_op(shapes, lambda *xs: tinyml.einsum(eq, *xs), lambda *xs: torch.einsum(eq, *xs), kind="reduction")


@pytest.mark.parametrize("eq,shapes", CASES[::3], ids=[c[0] for c in CASES[::3]])
def test_einsum_gradcheck(eq, shapes):
    rng = np.random.default_rng(3)
    xs = [tinyml.tensor(rng.standard_normal(s), dtype=tinyml.float64, requires_grad=True) for s in shapes]
    assert gradcheck(lambda *a: tinyml.einsum(eq, *a), xs)


def test_einsum_list_and_sublist_forms():
    check_op([(3, 4), (4, 5)], lambda a, b: tinyml.einsum("ij,jk->ik", [a, b]),
             lambda a, b: torch.einsum("ij,jk->ik", [a, b]))
    check_op([(3, 4), (4, 5)], lambda a, b: tinyml.einsum(a, [0, 1], b, [1, 2], [0, 2]),
             lambda a, b: torch.einsum(a, [0, 1], b, [1, 2], [0, 2]))
    check_op([(2, 3, 4), (4, 5)], lambda a, b: tinyml.einsum(a, [..., 0, 1], b, [1, 2]),
             lambda a, b: torch.einsum(a, [..., 0, 1], b, [1, 2]))
    check_op([(3, 4, 4)], lambda a: tinyml.einsum(a, [..., 7, 7], [...]),
             lambda a: torch.einsum(a, [..., 7, 7], [...]))


def test_einsum_float64_and_spaces():
    check_op([(3, 4), (4, 2)], lambda a, b: tinyml.einsum(" ij , jk -> ki ", a, b),
             lambda a, b: torch.einsum("ij,jk->ki", a, b), dtype="float64")


def test_greedy_path_contracts_the_thin_side_first():
    sizes = {"i": 100, "j": 100, "k": 2, "l": 100}
    # 'ij,jk,kl->il' with a thin k: j then k is 100*100*2 + ..., but (jk,kl) first gives a 100x100 and
    # (ij,jk) first gives a 100x2: the greedy cost picks the pair with the smaller result
    assert _greedy_pair([["i", "j"], ["j", "k"], ["k", "l"]], {"i", "l"}, sizes) == (0, 1)
    sizes = {"i": 2, "j": 100, "k": 100, "l": 100}
    assert _greedy_pair([["i", "j"], ["j", "k"], ["k", "l"]], {"i", "l"}, sizes) == (0, 1)
    sizes = {"i": 100, "j": 100, "k": 100, "l": 2}
    assert _greedy_pair([["i", "j"], ["j", "k"], ["k", "l"]], {"i", "l"}, sizes) == (1, 2)


@pytest.mark.parametrize("eq,shapes,match", [
    ("ij,jk->ik", [(3, 4), (5, 6)], "subscript j has size 5 for operand 1"),
    ("ii->i", [(3, 4)], "subscript i is repeated for operand 0 but the sizes don't match, 3 != 4"),
    ("ij->ii", [(3, 4)], "output subscript i appears more than once"),
    ("ij->k", [(3, 4)], "output subscript k does not appear"),
    ("ijk", [(3, 4)], r"number of subscripts in the equation \(3\) does not match the number of dimensions "
                      r"\(2\) for operand 0"),
    ("ij,jk", [(3, 4)], "fewer operands"),
    ("i1", [(3, 4)], "subscripts must be in"),
])
def test_einsum_errors_name_the_values(eq, shapes, match):
    xs = [tinyml.zeros(*s) for s in shapes]
    with pytest.raises((RuntimeError, ValueError), match=match):
        tinyml.einsum(eq, *xs)
