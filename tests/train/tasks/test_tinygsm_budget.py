"""The generator budget rule: the candidate whose validation greedy accuracy is nearest the target."""
import pytest
from tinyml.train.tasks.tinygsm_budget import choose_steps


def _rule(accuracies: dict, target: float):
    trained = []

    def train_one(k):
        trained.append(k)
        return f"model{k}", {"step": k}

    chosen = choose_steps(list(accuracies)[::-1], train_one, lambda m: accuracies[int(m[5:])], target,
                          log=lambda *a: None)
    return chosen, trained


def test_the_candidate_nearest_the_target_is_kept_and_every_one_is_measured():
    chosen, trained = _rule({100: 0.31, 200: 0.58, 400: 0.72, 800: 0.93}, 0.675)
    assert trained == [100, 200, 400, 800]  # fewest steps first, each once
    assert (chosen.steps, chosen.model, chosen.summary) == (400, "model400", {"step": 400})
    assert chosen.table == {100: 0.31, 200: 0.58, 400: 0.72, 800: 0.93}


def test_a_tie_goes_to_the_fewer_steps():
    chosen, _ = _rule({100: 0.6, 300: 0.8}, 0.7)
    assert chosen.steps == 100
    chosen, _ = _rule({100: 0.2, 300: 0.3}, 0.9)  # all below: the nearest is the best one
    assert chosen.steps == 300


def test_bad_candidates_or_targets_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"candidate step counts >= 1 \(got \[0, 10\]\)"):
        choose_steps([0, 10], None, None, 0.5)
    with pytest.raises(ValueError, match=r"candidate step counts >= 1 \(got \[\]\)"):
        choose_steps([], None, None, 0.5)
    with pytest.raises(ValueError, match=r"target accuracy in \(0, 1\) \(got 1.0\)"):
        choose_steps([10], None, None, 1.0)
