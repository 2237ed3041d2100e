"""Teaching Arithmetic data: the paper's four formats, balanced sampling, the held-out split."""
from collections import Counter

import numpy as np
import pytest
from tinyml.train.tasks import arithmetic as ar

DETAILED_128_367 = """<scratch>
[1,2,8] has 3 digits.
[3,6,7] has 3 digits.
[1,2,8] + [3,6,7] , A=[] , C=0 , 8+7+0=15 , A->5 , C->1
[1,2] + [3,6] , A=[5] , C=1 , 2+6+1=9 , A->9 , C->0
[1] + [3] , A=[9,5] , C=0 , 1+3+0=4 , A->4 , C->0
[] + [] , A=[4,9,5] C=0 , END
</scratch>
4 9 5;"""


def test_the_papers_four_formats_of_128_plus_367():
    assert ar.render(128, 367, "add", "plain") == ("128+367=", "495;")
    assert ar.render(128, 367, "add", "reverse") == ("$128+367=", "594$;")
    prompt, simple = ar.render(128, 367, "add", "simple")
    assert prompt == "Input:\n128+367\nTarget:\n"
    assert simple == "A->5 , C->1\nA->9 , C->0\nA->4 , C->0.\n495;"
    assert ar.render(128, 367, "add", "detailed") == (prompt, DETAILED_128_367)


def test_final_carry_and_unequal_lengths_in_the_scratchpads():
    _, simple = ar.render(999, 1, "add", "simple")
    assert simple.endswith("A->0 , C->1.\n1000;")
    _, detailed = ar.render(999, 1, "add", "detailed")
    assert "[9,9] + [] , A=[0] , C=1 , 9+0+1=10 , A->0 , C->1" in detailed
    assert detailed.endswith("[] + [] , A=[1,0,0,0] C=1 , END\n</scratch>\n1 0 0 0;")


@pytest.mark.parametrize("fmt", ar.FORMATS)
def test_every_format_parses_back_to_the_answer_and_fits_the_alphabet(fmt):
    rng = np.random.default_rng(1)
    tok = ar.tokenizer()
    for _ in range(200):
        a, b = ar.sample_problem(rng, 4)
        prompt, completion = ar.render(a, b, "add", fmt)
        assert ar.parse_answer(completion, fmt) == str(a + b)
        assert tok.decode(tok.encode(prompt + completion)) == prompt + completion
        assert completion.endswith(ar.EOS) and ar.EOS not in prompt + completion[:-1]


@pytest.mark.parametrize("op,fmt", [("sub", "plain"), ("sub", "reverse"), ("mul", "plain"),
                                    ("mul", "reverse")])
def test_subtraction_and_multiplication(op, fmt):
    rng = np.random.default_rng(2)
    for _ in range(100):
        a, b = ar.sample_problem(rng, 3, op)
        prompt, completion = ar.render(a, b, op, fmt)
        assert ar.OPERATIONS[op] in prompt
        assert ar.parse_answer(completion, fmt) == ar.answer_of(a, b, op)
        if op == "sub":
            assert a >= b
    assert ar.render(12, 34, "mul", "reverse") == ("$12*34=", "804$;")


def test_parse_answer_of_model_text_ignores_what_follows_eos_and_tolerates_garbage():
    assert ar.parse_answer("594$;12", "reverse") == "495"
    assert ar.parse_answer("", "plain") == ""
    assert ar.parse_answer("A->5 , C", "simple") == "A->5 , C"  # no answer line: not a number, never a match


def test_sampling_is_balanced_over_digit_counts_and_carries():
    rng = np.random.default_rng(3)
    problems = [ar.sample_problem(rng, 3) for _ in range(6000)]
    longest = Counter(max(len(str(a)), len(str(b))) for a, b in problems)
    assert all(abs(longest[d] / 6000 - 1 / 3) < 0.03 for d in (1, 2, 3)), longest
    three = [p for p in problems if max(len(str(p[0])), len(str(p[1]))) == 3]
    carries = Counter(ar.count_carries(a, b) for a, b in three)
    # uniform over 0..3 carries among 3-digit problems (uniform operands give ~4% with 3 carries)
    assert all(abs(carries[c] / len(three) - 0.25) < 0.04 for c in range(4)), carries
    for a, b in problems[:300]:  # the carry count agrees with the scratchpad's C->1 lines
        assert ar.simplified_scratchpad(a, b).count("C->1") == ar.count_carries(a, b)


def test_held_out_split_never_overlaps_training():
    split = ar.make_split(3, n_train=5000, n_test=500, seed=0)
    assert len(split.train) == 5000 and len(split.test) == len(set(split.test)) == 500
    assert not set(split.train) & set(split.test)
    one = ar.make_split(1, n_train=400, n_test=ar.test_capacity(1), seed=0)
    assert not set(one.train) & set(one.test)  # a tiny space: training still draws only the rest
    assert len(set(one.train)) == 100 - ar.test_capacity(1)
    again = ar.make_split(3, n_train=5000, n_test=500, seed=0)
    assert again.train == split.train and again.test == split.test


def test_bad_tasks_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown format 'fancy'; choose one of plain, reverse, simple, det"):
        ar.render(1, 2, "add", "fancy")
    with pytest.raises(ValueError, match="unknown operation 'div'"):
        ar.check_task("div", "plain")
    with pytest.raises(ValueError, match="detailed scratchpad is written for addition only"):
        ar.render(3, 2, "mul", "detailed")
    with pytest.raises(ValueError, match="n_test 26 is more than the 25 problems"):
        ar.make_split(1, n_train=10, n_test=26)
