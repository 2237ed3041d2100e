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
    with pytest.raises(ValueError, match="split by must be one of 'numbers', 'wording', 'instance', "
                                         "'template', got 'name'"):
        tinygsm.split(1, 1, by="name")
    with pytest.raises(ValueError, match=r"templates must be among .* \(got \['algebra'\]\)"):
        tinygsm.generate(1, templates=["algebra"])


def test_the_wording_split_holds_out_each_templates_last_paraphrase_with_training_quantities():
    train, test = tinygsm.split(600, 200, by="wording", seed=3)
    held_out = {(t, w) for t, ws in tinygsm.HELD_OUT_WORDINGS.items() for w in ws}
    assert {(p.template, p.wording) for p in test} == held_out  # every template, only its held-out wording
    assert not {(p.template, p.wording) for p in train} & held_out
    assert {p.template for p in train} == set(tinygsm.TEMPLATES)
    lo, hi = tinygsm.NUMBER_RANGES["train"]
    assert all(lo <= v <= hi for p in train + test for v in p.drawn)  # the training range on both sides
    assert not {p.question for p in train} & {p.question for p in test}
    assert all(tinygsm.TRAIN_WORDINGS[t] for t in tinygsm.TEMPLATES)  # no template is test-only


def test_the_instance_split_shares_one_distribution_but_no_question():
    train, test = tinygsm.split(2000, 300, by="instance", seed=1)
    assert not {p.question for p in train} & {p.question for p in test}
    assert {(p.template, p.wording) for p in test} == {(p.template, p.wording) for p in train}
    lo, hi = tinygsm.NUMBER_RANGES["train"]
    assert all(lo <= v <= hi for p in train + test for v in p.drawn)
    # a collision would be dropped, not kept: the test set is the seed + 1 stream minus training questions
    stream = tinygsm.generate(700, seed=2, **tinygsm.distribution("instance", "test"))
    exclude = {stream[0].question, stream[5].question}
    fresh = tinygsm.draw_new(300, 2, exclude, **tinygsm.distribution("instance", "test"))
    assert fresh == [p for p in stream if p.question not in exclude][:300]


def test_the_default_streams_are_unchanged_by_the_wording_option():
    # generate(m)[:n] == generate(n), and a wordings dict covering everything draws other questions than
    # none (it changes how the paraphrase is drawn), so the numbers split keeps its earlier problems
    assert tinygsm.generate(30, seed=4) == tinygsm.generate(90, seed=4)[:30]
    assert tinygsm.distribution("numbers", "all") == {"numbers": (2, 99)}
    assert tinygsm.distribution("numbers", "test") == {"numbers": (51, 99)}
    everything = {t: tuple(range(k)) for t, k in tinygsm.WORDING_COUNTS.items()}
    assert {p.template for p in tinygsm.generate(200, seed=0, wordings=everything)} == set(tinygsm.TEMPLATES)


def test_bad_wordings_and_sides_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"wordings must give every template .* \{'ages': \(9,\)\}"):
        tinygsm.generate(5, wordings={**tinygsm.TRAIN_WORDINGS, "ages": (9,)})
    with pytest.raises(ValueError, match=r"got  \['rate'\]"):
        tinygsm.generate(5, templates=["rate"], wordings={"ages": (0,)})
    with pytest.raises(ValueError, match=r"by must be one of numbers, wording, instance, template "
                                         r"\(got 'x'\) and part 'train', 'test' or 'all' \(got 'val'\)"):
        tinygsm.distribution("x", "val")
    tiny = dict(templates=["fraction"], numbers=(2, 2), wordings={"fraction": (0,)})  # 800 questions at most
    every = {p.question for p in tinygsm.generate(8000, 9, **tiny)}
    with pytest.raises(ValueError, match=f"fewer than 1 problems outside the {len(every)} excluded"):
        tinygsm.draw_new(1, 0, every, **tiny)
