"""The Mix Distillation data mixer: long:short ratio, one trace per problem, one-line errors."""
import math

import pytest
from tinyml.train.tasks import arithmetic as ar
from tinyml.train.tasks import mix


@pytest.mark.parametrize("ratio,expected", [("1:4", (1.0, 4.0)), ((2, 3), (2.0, 3.0)), (0.5, (0.5, 1.0)),
                                            (" 1 : 1 ", (1.0, 1.0))])
def test_ratio_forms(ratio, expected):
    assert mix.parse_ratio(ratio) == expected


@pytest.mark.parametrize("ratio", ["0:4", "1:-1", "-1", 0, -2.0, "1:inf", "nan:1", "a:b", "1:2:3", "14", None,
                                   True, (1,), math.nan])
def test_a_ratio_that_is_not_positive_is_a_one_line_error(ratio):
    message = r"mix ratio must be long:short with both parts positive \(e\.g\. 1:4\)"
    with pytest.raises(ValueError, match=message) as e:
        mix.parse_ratio(ratio)
    assert len(str(e.value).splitlines()) == 1


def test_the_mix_keeps_each_problem_once_at_the_ratio():
    problems = ar.make_split(2, n_train=500, n_test=10, seed=1).train
    long, short = mix.arithmetic_traces(problems, "plain")
    mixed = mix.mix_traces(long, short, seed=3)  # default 1:4
    assert len(mixed) == 500
    assert sum("<scratch>" in c for _, c in mixed) == 100
    # every problem appears once, with one of its two traces
    assert set(mixed) <= {*long, *short}
    prompts = [p for p, _ in mixed]
    assert sorted(prompts) == sorted(p for p, _ in long)
    assert mix.mix_traces(long, short, "1:1", seed=3) != mix.mix_traces(long, short, "1:1", seed=4)
    assert sum("<scratch>" in c for _, c in mix.mix_traces(long, short, "3:1")) == 375
    with pytest.raises(ValueError, match="same problems, got 500 long and 499 short"):
        mix.mix_traces(long, short[:-1])


@pytest.mark.parametrize("short_fmt", ["plain", "reverse"])
def test_long_and_short_traces_share_the_prompt_and_parse_to_the_answer(short_fmt):
    long, short = mix.arithmetic_traces([(128, 367), (5, 98)], short_fmt)
    prompts = ["Input:\n128+367\nTarget:\n", "Input:\n5+98\nTarget:\n"]
    assert [p for p, _ in long] == [p for p, _ in short] == prompts
    assert short[0][1] == ("495;" if short_fmt == "plain" else "594$;")
    for (_, lc), (_, sc), answer in zip(long, short, ["495", "103"]):
        assert mix.parse_trace(lc, short_fmt) == mix.parse_trace(sc, short_fmt) == answer
    with pytest.raises(ValueError, match="short trace is plain or reverse, got 'simple'"):
        mix.arithmetic_traces([(1, 2)], "simple")
