"""TinyGSM: wrong-slot hard negatives, the likelihood score, nucleus sampling and verifier samples
from several generator checkpoints."""
import re
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tinyml.models import GPT, GPTConfig
from tinyml.train.tasks import tinygsm
from tinyml.train.tasks.tinygsm_model import EOS, sample_solutions, train_tokenizer
from tinyml.train.tasks.tinygsm_run import TinyGSMRun, check_run
from tinyml.train.tasks.tinygsm_samples import _key, _new_fields, verifier_data
from tinyml.train.tasks.tinygsm_verifier import SLOT_KINDS, Verifier, log_likelihood, score, slot_negatives

import tinyml


@pytest.fixture(scope="module")
def setup():
    problems = tinygsm.attach_gold(tinygsm.generate(12, seed=4))
    tok = train_tokenizer(problems, vocab_size=330)
    tinyml.manual_seed(0)
    config = GPTConfig(vocab_size=tok.vocab_size, block_size=128, n_layer=1, n_head=2, n_embd=16)
    return problems, tok, config


def test_slot_negatives_keep_the_questions_numbers_and_change_the_program():
    problems = tinygsm.generate(60, seed=3)
    rng = np.random.default_rng(0)
    total = 0
    for p in problems:
        gold = re.findall(r"\d+", p.solution)
        allowed = set(gold) | {str(x) for x in p.numbers} | {str(100 - x) for x in p.numbers if x < 100}
        variants = slot_negatives(p, 6, rng)
        total += len(variants)
        for v in variants:
            numbers = re.findall(r"\d+", v)
            assert v != p.solution and len(numbers) == len(gold)  # literals rewritten, none added or lost
            assert set(numbers) <= allowed  # swapped, repeated, or 100 minus a percentage
            assert re.sub(r"\d+", "#", v) == re.sub(r"\d+", "#", p.solution)
            own = {"0", "1"}  # a base case is never a slot
            assert Counter(n for n in numbers if n in own) == Counter(n for n in gold if n in own)
    assert total > 250 and SLOT_KINDS == ("swap", "twice", "percent")
    again = [slot_negatives(p, 6, np.random.default_rng(0)) for p in problems[:5]]
    assert again == [slot_negatives(p, 6, np.random.default_rng(0)) for p in problems[:5]]  # seeded
    lone = tinygsm.Problem("q", "def solution():\n    return 7\n", "rate", 0, (7,))
    assert slot_negatives(lone, 3, rng) == []  # one literal: nothing to swap or repeat


def test_swap_exchanges_two_numbers_and_percent_rewrites_the_percentage():
    p = tinygsm.Problem("A $80 coat is 25% off.", "def solution():\n    discount = 80 * 25 / 100\n"
                        "    return 80 - discount\n", "percent", 0, (80, 25))
    out = slot_negatives(p, 3, np.random.default_rng(1))
    assert "80 * 25" not in out[0]  # swap: the two distinct literals trade places somewhere
    assert out[2] in (p.solution.replace("* 25 /", "* 75 /"), p.solution.replace("* 25 /", "* 80 /"))


def test_log_likelihood_is_the_sum_of_the_solution_tokens_log_probabilities(setup):
    problems, tok, config = setup
    model = GPT(config)
    codes = [p.solution for p in problems[:3]] + ["def solution():\n    return 1\n"]
    got = log_likelihood(model, tok, problems[:4], codes)
    eos = tok.token_to_id(EOS)
    for i, (p, c) in enumerate(zip(problems, codes)):  # one row at a time, no padding, with torch
        start = len(tok.encode(p.question + "\n"))
        ids = tok.encode(p.question + "\n" + c) + [eos]
        logits, _ = model(tinyml.tensor(np.array([ids])))
        logp = torch.log_softmax(torch.tensor(logits.detach().numpy()[0], dtype=torch.float64), dim=-1)
        want = sum(float(logp[t - 1, ids[t]]) for t in range(start, len(ids)))
        assert got[i] == pytest.approx(want, rel=1e-5, abs=1e-5)
    verifier = Verifier(config)
    verifier.trunk.load_state_dict(model.state_dict())
    np.testing.assert_allclose(score(verifier, tok, problems[:4], codes, reduce="lm"), got, rtol=1e-6)
    assert log_likelihood(model, tok, [], []).shape == (0,)


def test_top_p_one_is_plain_sampling_and_a_bad_top_p_is_refused(setup):
    problems, tok, config = setup
    model = GPT(config)
    plain = sample_solutions(model, tok, problems[:2], 3, 1.0, 6, seed=5)
    assert sample_solutions(model, tok, problems[:2], 3, 1.0, 6, seed=5, top_p=1.0) == plain
    nucleus = sample_solutions(model, tok, problems[:2], 3, 1.0, 6, seed=5, top_p=1e-6)
    greedy = sample_solutions(model, tok, problems[:2], 1, 0.0, 6)
    assert all(row == [g[0]] * 3 for row, g in zip(nucleus, greedy))  # a tiny nucleus is the top token
    with pytest.raises(ValueError, match="top_p=1.5"):
        sample_solutions(model, tok, problems[:1], 1, 1.0, 4, top_p=1.5)
    with pytest.raises(ValueError, match="top_p must be in"):
        check_run(TinyGSMRun(top_p=0.0))
    with pytest.raises(ValueError, match="slot_negatives must be >= 0"):
        check_run(TinyGSMRun(slot_negatives=-1))


def test_verifier_problems_are_shared_out_among_the_checkpoints(setup, monkeypatch):
    problems, tok, config = setup
    import tinyml.train.tasks.tinygsm_samples as samples_mod

    calls = []

    def fake_sample(model, tok, ps, n, temperature, max_new, seed=0, top_p=None):
        calls.append((model, [p.question for p in ps], top_p))
        return [[f"def solution():\n    return {model}\n"] * n for _ in ps]

    monkeypatch.setattr(samples_mod, "sample_solutions", fake_sample)
    run = SimpleNamespace(seed=0, verifier_samples=2, verifier_temperature=0.8, top_p=0.9, hard_negatives=0,
                          slot_negatives=2, workers=2, out=None, resume=False, log=lambda *a: None,
                          contrast_problems=0, **{f: 0 for f in ("split", "train_problems", "test_problems",
                                                                 "vocab_size", "n_layer", "n_head", "n_embd",
                                                                 "batch_size", "lr", "verifier_problems",
                                                                 "verifier_from", "verifier_checkpoints")})
    v = verifier_data(run, 5, tok, problems[:5], [], 8, 500, others={800: 8, 600: 6})
    assert [c[0] for c in calls] == [5, 6, 8] and all(c[2] == 0.9 for c in calls)
    assert calls[0][1] == [problems[i].question for i in (0, 3)]  # problem i: model i % 3
    assert calls[1][1] == [problems[i].question for i in (1, 4)]
    assert v["correct"].shape == (5, 4)  # 2 samples + 2 slot negatives (padded) per problem
    assert [row[0] for row in v["samples"]] == [f"def solution():\n    return {m}\n" for m in (5, 6, 8, 5, 6)]


def test_keys_of_earlier_saved_samples_are_unchanged_by_the_new_settings():
    run = TinyGSMRun()
    assert _new_fields(run, ("verifier_checkpoints", "slot_negatives")) == ()
    assert "top_p" not in _key(run, 800, ("samples", "temperature") + _new_fields(run, ()))
    newer = TinyGSMRun(top_p=0.9, slot_negatives=3)
    assert _new_fields(newer, ("verifier_checkpoints", "slot_negatives")) == ("slot_negatives", "top_p")


def test_quick_run_with_checkpoints_slot_negatives_nucleus_and_the_likelihood_score(tmp_path, capsys):
    import json

    from tinyml.train.cli import main

    out = tmp_path / "gsm"
    assert main(["tinygsm", "--quick", "--split", "instance", "--generator-steps", "2,3",
                 "--verifier-checkpoints", "2,3", "--slot-negatives", "2", "--top-p", "0.9",
                 "--verifier-temperature", "0.8", "--verifier-score", "lm", "--pick-runnable",
                 "--out", str(out), "--device", "cpu"]) == 0
    result = json.loads((out / "tinygsm.json").read_text())
    run = result["run"]
    assert run["verifier_checkpoints"] == [2, 3] and run["slot_negatives"] == 2 and run["top_p"] == 0.9
    assert run["verifier_score"] == "lm" and run["pick_runnable"] is True
    assert result["verifier"]["val_accuracy_score"] == "min"  # a log-likelihood has no threshold at 0
    saved = json.loads((out / "verifier_data.json").read_text())["key"]
    assert saved["verifier_checkpoints"] == [2, 3] and saved["top_p"] == 0.9
    for n in ("1", "2", "4"):
        assert result["curves"]["verifier"][n] <= result["curves"]["oracle"][n] + 1e-12
    with pytest.raises(SystemExit):
        main(["tinygsm", "--quick", "--top-p", "0", "--out", str(tmp_path / "x")])
    assert "--top-p" in capsys.readouterr().err
    assert main(["tinygsm", "--quick", "--generator-steps", "2,3", "--verifier-checkpoints", "7",
                 "--out", str(tmp_path / "y"), "--device", "cpu"]) != 0  # refused before any training
    err = capsys.readouterr().err
    assert "verifier_checkpoints [7] must be budget candidates" in err and "[2, 3]" in err
    assert not (tmp_path / "y" / "generator_2steps").exists()
