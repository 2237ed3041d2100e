"""TinyGSM-style problems: templates and wordings, gold answers from the sandbox, leak-free splits."""
import pytest
from tinyml.train.tasks import tinygsm


def test_problems_are_diverse_and_their_solutions_define_solution():
    problems = tinygsm.generate(600, seed=0)
    info = tinygsm.describe(problems)
    assert info["templates"] == len(tinygsm.TEMPLATES) and info["wordings"] >= 2 * len(tinygsm.TEMPLATES)
    assert info["distinct_questions"] >= 590 and info["names"] == len(tinygsm.NAMES)
    assert all("def solution():" in p.solution and "return" in p.solution for p in problems)
    assert tinygsm.generate(50, seed=3) == tinygsm.generate(50, seed=3)


def test_gold_answers_come_from_executing_the_solution_in_the_sandbox():
    problems = tinygsm.attach_gold(tinygsm.generate(120, seed=1), chunk=50)
    for p in problems:
        if p.template == "rate":
            assert p.answer == p.numbers[0] * p.numbers[1]
        if p.template == "money":
            price, count, paid = p.numbers
            assert p.answer == paid - price * count and p.answer >= 0
        if p.template == "ratio":
            total, x, y = p.numbers
            assert p.answer == total * x // (x + y)
        assert isinstance(p.answer, (int, float)), p


def test_gold_fails_loudly_when_a_solution_breaks():
    bad = tinygsm.generate(2, seed=0)
    bad[1] = tinygsm.Problem("?", "def solution():\n    return 1 / 0\n", "rate", 0, ())
    with pytest.raises(RuntimeError, match="gold solutions failed in the sandbox: error: ZeroDivisionError"):
        tinygsm.attach_gold(bad)


def test_held_out_splits_do_not_leak():
    train, test = tinygsm.split(400, 100, by="template")
    assert {p.template for p in test} == set(tinygsm.HELD_OUT_TEMPLATES)
    assert not {p.template for p in train} & set(tinygsm.HELD_OUT_TEMPLATES)
    assert not {p.question for p in train} & {p.question for p in test}
    train, test = tinygsm.split(400, 100, by="numbers")
    lo, hi = tinygsm.NUMBER_RANGES["train"]
    assert all(lo <= v <= hi for p in train for v in p.drawn)
    assert max(max(p.drawn) for p in train) < min(min(p.drawn) for p in test)
    assert not {p.question for p in train} & {p.question for p in test}
    with pytest.raises(ValueError, match="split by must be 'template' or 'numbers', got 'name'"):
        tinygsm.split(1, 1, by="name")
    with pytest.raises(ValueError, match=r"templates must be among .* \(got \['algebra'\]\)"):
        tinygsm.generate(1, templates=["algebra"])
