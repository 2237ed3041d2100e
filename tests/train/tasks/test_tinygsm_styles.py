"""Several solution styles per TinyGSM template (train/tasks/tinygsm_styles.py): every style computes
the template's answer bit for bit, the default data are those of earlier sessions byte for byte,
and the questions do not depend on the styles."""
import hashlib
from dataclasses import replace

import numpy as np
import pytest
from tinyml.train.tasks import tinygsm
from tinyml.train.tasks.tinygsm_samples import _key, _new_fields
from tinyml.train.tasks.tinygsm_select import number_rule_scores
from tinyml.train.tasks.tinygsm_spec import TinyGSMRun, check_run, make_problems
from tinyml.train.tasks.tinygsm_styles import MAX_STYLES, STYLE_COUNTS, solution, style_count


def _digest(problems) -> str:
    text = "\x00".join(p.question + "\x01" + p.solution + "\x01" + p.template + str(p.wording)
                       + repr(p.numbers) + repr(p.drawn) for p in problems)
    return hashlib.sha256(text.encode()).hexdigest()


# taken before the styles existed (session 13, commit 7804ebd): the default output must not move
BEFORE = {
    "generate(200, seed=0)": "e2d5afaf8d8c07e2a64060e89a7d4709d8b415dc5507dec41a6416728692230b",
    "numbers/train": "0d7d84b0c950efb6cf98d9071d17db21315122a35f73dea636c2d0d07b28b3fb",
    "numbers/test": "710acb8c04e46eb5c5c633f68d9207b510fe2421c247cf9c67c4342d8a462860",
    "numbers/all": "fa3969687447e2d4bcd8f213d40bea0e55afe8053239cb62af74733ad2e8709e",
    "wording/train": "e43b25abdae331c087b6722161d89116501d02eb19013bbeadb04ae9cfeff45f",
    "wording/test": "a59949518d88aedc0574f48604f11dec33992928e3f4b1023a1fbaedf7cafd56",
    "template/train": "5cc24a060c6c820b70e02b4811209ab3abb14e7390aedf59b2788d5b1e16235f",
    "template/test": "802992665c38d0432f3b6334d25a47ef5dc560173d0a42cde12f1bca6ddda2be",
}


@pytest.mark.parametrize("styles", [None, 1, "1"])
def test_the_default_output_is_byte_identical_to_before_the_styles(styles):
    more = {} if styles is None else {"styles": styles}
    assert _digest(tinygsm.generate(200, seed=0, **more)) == BEFORE["generate(200, seed=0)"]
    for key, digest in BEFORE.items():
        if "/" in key:
            by, part = key.split("/")
            problems = tinygsm.generate(300, seed=3, **tinygsm.distribution(by, part), **more)
            assert _digest(problems) == digest, key
    assert all(p.style == 0 for p in tinygsm.generate(100, seed=5, **more))


def _name(p) -> str:
    """The problem's person: for "ages" the name its own solution's first line assigns, else any."""
    first = p.solution.splitlines()[1].split("=")[0].strip()
    return next((n for n in tinygsm.NAMES if n.lower() == first), tinygsm.NAMES[0])


@pytest.mark.parametrize("numbers", [(2, 99), (51, 99), (1, 400)])
def test_every_style_of_every_template_executes_to_the_answer_of_the_templates_own(numbers):
    problems = tinygsm.generate(400, seed=sum(numbers), numbers=numbers)
    assert {p.template for p in problems} == set(tinygsm.TEMPLATES)
    rows = [replace(p, solution=solution(p.template, s, p.numbers, _name(p), p.solution), style=s)
            for p in problems for s in range(STYLE_COUNTS[p.template])]
    gold = tinygsm.attach_gold(rows, chunk=400)
    for k in range(0, len(gold), MAX_STYLES):
        own = gold[k]
        assert own.style == 0 and own.solution == problems[k // MAX_STYLES].solution
        for other in gold[k + 1:k + MAX_STYLES]:  # the same type and bits: 12 != 12.0 here
            assert type(other.answer) is type(own.answer) and repr(other.answer) == repr(own.answer), \
                (own.solution, other.solution, own.answer, other.answer)
            assert other.solution != own.solution


def test_styles_change_only_the_solutions_and_cover_every_style():
    plain, styled = tinygsm.generate(600, seed=7), tinygsm.generate(600, seed=7, styles="all")
    for a, b in zip(plain, styled):
        assert (a.question, a.template, a.wording, a.numbers, a.drawn) == \
            (b.question, b.template, b.wording, b.numbers, b.drawn)
        assert (b.style == 0) == (a.solution == b.solution)
    seen = {(p.template, p.style) for p in styled}
    assert seen == {(t, s) for t in tinygsm.TEMPLATES for s in range(STYLE_COUNTS[t])}
    assert tinygsm.generate(250, seed=7, styles="all") == styled[:250]  # one after another
    two = tinygsm.generate(600, seed=7, styles=2)
    assert {p.style for p in two} == {0, 1} and [p.question for p in two] == [p.question for p in plain]
    info = tinygsm.describe(styled)
    assert info["distinct_solutions"] > tinygsm.describe(plain)["distinct_solutions"]


def test_styles_write_only_the_questions_numbers_and_the_solutions_own_literals():
    problems = tinygsm.generate(300, seed=11, styles="all")
    scores = number_rule_scores([p.question for p in problems], [[p.solution] for p in problems])
    own = tinygsm.generate(300, seed=11)  # the number rule treats every style as the template's own
    assert scores.shape == (300, 1) and (scores == number_rule_scores([p.question for p in own],
                                                                     [[p.solution] for p in own])).all()
    assert scores.mean() > 0.8  # (a question saying "one half" instead of 1/2 fails it in every style)
    for p in problems:
        compile(p.solution, "<style>", "exec")
        assert p.solution.startswith("def solution():\n") and "return" in p.solution


def test_bad_style_counts_are_refused_naming_the_value():
    assert style_count("all") == MAX_STYLES and style_count(2) == 2 and style_count("3") == 3
    for bad in (0, MAX_STYLES + 1, "two", True, 1.5, -1, None):
        with pytest.raises(ValueError, match=f"'all' or a count 1..{MAX_STYLES}, got {bad!r}"):
            style_count(bad)
    with pytest.raises(ValueError, match="solution styles must be"):
        tinygsm.generate(3, styles=0)
    with pytest.raises(ValueError, match="solution styles must be"):
        check_run(TinyGSMRun(solution_styles="most"))
    with pytest.raises(ValueError, match=r"style in 0..3 \(got 4\)"):
        solution("rate", 4, (2, 3), "Ava")
    with pytest.raises(ValueError, match="pass it"):
        solution("rate", 0, (2, 3), "Ava")


def test_the_cli_takes_all_or_a_count_and_refuses_others(tmp_path, capsys):
    from tinyml.train.cli import main
    from tinyml.train.commands.tinygsm import solution_styles

    assert solution_styles("all") == "all" and solution_styles("2") == 2
    for value in ("0", "9", "many"):
        with pytest.raises(SystemExit) as exit_:
            main(["tinygsm", "--solution-styles", value, "--out", str(tmp_path / "z")])
        assert exit_.value.code == 2 and "--solution-styles" in capsys.readouterr().err


def test_a_run_with_styles_has_the_same_problems_and_its_own_sample_key():
    small = dict(train_problems=60, test_problems=10, verifier_problems=12, contrast_problems=12,
                 validation_problems=6)
    plain = make_problems(TinyGSMRun(**small))
    styled = make_problems(TinyGSMRun(**small, solution_styles="all"))
    for a, b in zip(plain, styled):
        assert [(p.question, p.answer) for p in a] == [(p.question, p.answer) for p in b]
    assert any(p.style for p in styled.train) and not any(p.style for p in plain.train)
    assert "solution_styles" not in _key(TinyGSMRun(), 800, _new_fields(TinyGSMRun(), ()))
    key = _key(TinyGSMRun(solution_styles="all"), 800, _new_fields(TinyGSMRun(solution_styles="all"), ()))
    assert key["solution_styles"] == "all"  # saved samples of single-style runs are not reused
    assert np.mean([p.style == 0 for p in styled.train]) < 0.5
