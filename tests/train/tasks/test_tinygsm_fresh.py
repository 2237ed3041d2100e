"""Session 11's readings: further validation and fresh test problems, sampling settings and their
rule, per-problem best-of-N with standard errors (train/tasks/tinygsm_fresh.py)."""
import numpy as np
import pytest
from tinyml.models import GPT
from tinyml.train.tasks import tinygsm
from tinyml.train.tasks.tinygsm_fresh import (
    choose_setting,
    context,
    evaluate,
    extra_problems,
    mean_se,
    parse_setting,
    sample_setting,
)
from tinyml.train.tasks.tinygsm_select import selection_curves, selection_per_problem
from tinyml.train.tasks.tinygsm_spec import TinyGSMRun
from tinyml.train.tasks.tinygsm_verifier import Verifier

import tinyml

SMALL = dict(train_problems=300, test_problems=60, verifier_problems=80, contrast_problems=120,
             validation_problems=40, n_layer=1, n_head=2, n_embd=16, vocab_size=330, progress=False)


@pytest.mark.parametrize("split", ["numbers", "instance", "wording"])
def test_further_validation_and_fresh_test_problems_are_in_no_other_set(split):
    run = TinyGSMRun(split=split, **SMALL)
    ctx = context(run)
    extra_val, fresh = extra_problems(run, ctx.sets, 30, 50)
    assert (len(extra_val), len(fresh)) == (30, 50)
    groups = [{p.question for p in ps} for ps in (*ctx.sets, extra_val, fresh)]
    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            assert not groups[a] & groups[b], (a, b)
    side = tinygsm.distribution(split, "test")
    session10 = {p.question for p in tinygsm.draw_new(400, 1234, set(), **side)}
    assert not session10 & (groups[-1] | groups[-2])  # the 400 problems session 10 read are not reused
    assert all(p.answer is not None for p in extra_val + fresh)
    if split == "numbers":  # the test side: quantities 51..99, never seen by the generator
        assert min(v for p in extra_val + fresh for v in p.drawn) > tinygsm.NUMBER_RANGES["train"][1]
    # the same run draws the same sets (the choice and the reading agree on which problems are which)
    again = extra_problems(run, ctx.sets, 30, 50)
    assert [p.question for p in again[1]] == [p.question for p in fresh]


def test_settings_parse_and_bad_ones_name_the_value():
    assert parse_setting("0.8/0.9") == [(0.8, 0.9)]
    assert parse_setting("0.6/0.9+1.2/1.0") == [(0.6, 0.9), (1.2, 1.0)]
    for bad in ("0.8", "0.8/0.9/1", "a/b", "0/0.9", "0.8/1.5", "0.8/0"):
        with pytest.raises(ValueError, match=bad.replace("+", r"\+")):
            parse_setting(bad)


def test_per_problem_selection_averages_to_the_curves_with_the_same_draws():
    rng = np.random.default_rng(3)
    correct = rng.random((25, 12)) < 0.4
    keys = [[int(x) if rng.random() < 0.8 else None for x in row] for row in correct]
    scores = rng.random((25, 12))
    per = selection_per_problem(correct, keys, scores, (1, 3, 12), repeats=7, seed=5)
    means = selection_curves(correct, keys, scores, (1, 3, 12), repeats=7, seed=5)
    for m, by_n in per.items():
        for n, a in by_n.items():
            assert a.shape == (25,) and ((0 <= a) & (a <= 1)).all()
            assert a.mean() == pytest.approx(means[m][n], abs=1e-12)
    np.testing.assert_array_equal(per["oracle"][12], correct.any(axis=1))


def test_standard_errors_are_those_of_a_mean_over_problems():
    a = np.array([1.0, 0.0, 1.0, 1.0, 0.5])
    m, se = mean_se(a)
    assert m == pytest.approx(0.7) and se == pytest.approx(np.std(a, ddof=1) / np.sqrt(5))
    assert mean_se([1.0]) == (1.0, 0.0)
    g = np.array([1.0, 0.0, 0.0, 1.0, 1.0])  # paired: the spread of the differences
    assert mean_se(a - g)[1] == pytest.approx(np.std(a - g, ddof=1) / np.sqrt(5))
    with pytest.raises(ValueError, match="no values"):
        mean_se([])


def test_the_rule_takes_the_best_pick_then_the_oracle_then_the_first_listed():
    rows = [{"setting": s, "verifier": v, "oracle": o}
            for s, v, o in (("a", 0.70, 0.80), ("b", 0.72, 0.74), ("c", 0.72, 0.78), ("d", 0.72, 0.78))]
    assert choose_setting(rows) == "c"
    with pytest.raises(ValueError, match="no settings"):
        choose_setting([])


@pytest.fixture(scope="module")
def tiny():
    ctx = context(TinyGSMRun(**SMALL, workers=2))
    tinyml.manual_seed(0)
    return ctx, GPT(ctx.config), Verifier(ctx.config)


def test_a_mix_shares_the_samples_among_its_settings(tiny):
    ctx, generator, _ = tiny
    problems = ctx.sets.validation[:3]
    rows = sample_setting(ctx, generator, problems, 4, "0.7/0.9+1.3/1.0", seed=1)
    assert [len(r) for r in rows] == [4, 4, 4]
    first = sample_setting(ctx, generator, problems, 2, "0.7/0.9", seed=1)  # the first part's seed
    assert [r[:2] for r in rows] == first
    with pytest.raises(ValueError, match="3 samples do not share equally among the 2 parts"):
        sample_setting(ctx, generator, problems, 3, "0.7/0.9+1.3/1.0", seed=1)


def test_a_reading_has_every_method_and_n_with_errors_and_paired_margins(tiny):
    ctx, generator, verifier = tiny
    problems = ctx.sets.validation[:4]
    out = evaluate(ctx, generator, verifier, problems, "1.0/1.0", samples=4, ns=(1, 2, 4), repeats=3)
    assert out["problems"] == 4 and 0 <= out["greedy"][0] <= 1 and out["greedy"][1] >= 0
    assert set(out["curves"]) == {"first", "majority", "verifier", "oracle", "number rule"}
    for by_n in out["curves"].values():
        assert set(by_n) == {"1", "2", "4"}
        for cell in by_n.values():  # margin over greedy = accuracy - greedy (paired, same problems)
            assert cell["over_greedy"][0] == pytest.approx(cell["mean_se"][0] - out["greedy"][0])
            assert cell["mean_se"][1] >= 0 and cell["over_greedy"][1] >= 0


def test_a_reading_formats_as_a_table_with_errors_and_margins(tiny):
    import os
    import tempfile

    from tinyml.train.tasks.tinygsm_report import format_reading, plot_fresh

    ctx, generator, verifier = tiny
    out = evaluate(ctx, generator, verifier, ctx.sets.validation[:3], "1.0/1.0", samples=2, ns=(1, 2),
                   repeats=2)
    table = format_reading(out)
    assert table.count("\n") == 8 and "N = 1 | N = 2 |" in table and "N = 4" not in table
    assert "verifier - greedy (paired)" in table and "+-" in table
    with tempfile.TemporaryDirectory() as d:
        plot_fresh(out, os.path.join(d, "p.png"))
        assert os.path.getsize(os.path.join(d, "p.png")) > 0


def test_fresh_round_2_is_new_problems_the_same_with_or_without_styles():
    # session 13's fresh set: none of session 11's (round 1, read with 400 further validation problems
    # and 600 fresh ones), nor of any set the run or the validation choice uses
    run = TinyGSMRun(**SMALL)
    ctx = context(run)
    val1, round1 = extra_problems(run, ctx.sets, 400, 600)
    val2, round2 = extra_problems(run, ctx.sets, 400, 300, fresh_round=2)
    assert [p.question for p in val2] == [p.question for p in val1]  # the same validation problems
    others = {p.question for ps in (*ctx.sets, val1, round1) for p in ps}
    side = tinygsm.distribution("numbers", "test")
    others |= {p.question for p in tinygsm.draw_new(400, 1234, set(), **side)}
    assert len(round2) == 300 and not {p.question for p in round2} & others
    assert all(p.answer is not None for p in round2)
    assert min(v for p in round2 for v in p.drawn) > tinygsm.NUMBER_RANGES["train"][1]
    styled = TinyGSMRun(**SMALL, solution_styles="all")
    sctx = context(styled)
    again = extra_problems(styled, sctx.sets, 400, 300, fresh_round=2)[1]
    assert [(p.question, p.answer) for p in again] == [(p.question, p.answer) for p in round2]
    with pytest.raises(ValueError, match="fresh_round must be in 1..2, got 3"):
        extra_problems(run, ctx.sets, 1, 1, fresh_round=3)
