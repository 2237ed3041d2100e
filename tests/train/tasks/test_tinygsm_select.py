"""Best-of-N selection: first sample, majority vote over executed answers, verifier pick, oracle."""
import numpy as np
import pytest
from tinyml.train.tasks.tinygsm_select import answer_key, selection_curves


def test_answer_keys_group_equal_numbers_and_drop_failures():
    assert answer_key(3) == answer_key(3.0000000001) and answer_key(None) is None
    assert answer_key("x") == repr("x") and answer_key(True) != answer_key(1)


def test_with_every_sample_each_method_picks_what_it_should():
    # problem 0: majority answer 5 is wrong, the verifier's top pick (score 9) is right
    # problem 1: failed runs do not vote; the one answer that ran is right
    # problem 2: a tie between 1 and 2 goes to the answer reached first (1, right)
    correct = np.array([[False, False, True], [False, False, True], [True, False, False]])
    keys = [[5, 5, 7], [None, None, 3], [1, 2, None]]
    scores = np.array([[0.0, 1.0, 9.0], [5.0, 4.0, 3.0], [0.0, 1.0, 2.0]])
    c = selection_curves(correct, keys, scores, ns=[3], repeats=7)
    assert c["majority"][3] == pytest.approx(2 / 3)
    assert c["verifier"][3] == pytest.approx(1 / 3)  # right on problem 0 only
    assert c["oracle"][3] == 1.0
    assert 0.0 <= c["first"][3] <= 1.0


def test_small_n_averages_random_subsets_and_matches_the_expected_accuracy():
    rng = np.random.default_rng(0)
    correct = rng.random((40, 16)) < 0.3
    keys = [[int(x) for x in row] for row in correct]
    c = selection_curves(correct, keys, rng.random((40, 16)), ns=[1, 4, 16], repeats=200, seed=1)
    assert c["first"][1] == pytest.approx(correct.mean(), abs=0.02)
    assert c["oracle"][1] == pytest.approx(c["first"][1])
    assert c["oracle"][1] <= c["oracle"][4] <= c["oracle"][16] == correct.any(axis=1).mean()
    perfect = selection_curves(correct, keys, correct.astype(float), ns=[16])  # a verifier that knows
    assert perfect["verifier"][16] == perfect["oracle"][16]


def test_bad_shapes_and_n_are_refused_with_the_values():
    with pytest.raises(ValueError, match=r"every N must be in 1..4 .*\[5\]"):
        selection_curves(np.zeros((2, 4), bool), [[None] * 4] * 2, np.zeros((2, 4)), ns=[1, 5])
    with pytest.raises(ValueError, match=r"\(2, 4\), \(2, 3\) and 2"):
        selection_curves(np.zeros((2, 4), bool), [[None] * 4] * 2, np.zeros((2, 3)), ns=[1])


def test_the_number_rule_accepts_a_program_only_when_its_numbers_are_the_questions():
    from tinyml.train.tasks.tinygsm_select import number_rule_scores

    question = "Ava buys 12 pens at $3 each and pays with $50. How much change does Ava get?"
    codes = [["def solution():\n    cost = 3 * 12\n    return 50 - cost\n",  # right numbers
              "def solution():\n    cost = 3 * 21\n    return 50 - cost\n",  # 21 miscopied
              "def solution():\n    x = 50 * 100 / 100\n    return x - 1 - 0\n",  # 0, 1, 100: the code's own
              "def solution():\n    return 50.5 - v12\n"]]  # 50.5 and v12 hold no integer literal
    assert number_rule_scores([question], codes).tolist() == [[1.0, 0.0, 1.0, 1.0]]
    assert number_rule_scores([], []).shape == (0, 0)
