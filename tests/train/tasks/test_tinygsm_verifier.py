"""TinyGSM's verifier: the GPT trunk with a scalar head on the last token, BCE, balanced batches."""
import numpy as np
import pytest
import torch
from tinyml.models import GPTConfig
from tinyml.train.distill.losses import causal_lm_outputs
from tinyml.train.tasks import tinygsm
from tinyml.train.tasks.tinygsm_model import train_tokenizer
from tinyml.train.tasks.tinygsm_verifier import (
    Verifier,
    VerifierSampler,
    contrast_set,
    encode_scored,
    perturbed_solutions,
    score,
)
from tinyml.train.trainer import TrainConfig, Trainer

import tinyml


@pytest.fixture(scope="module")
def setup():
    problems = tinygsm.generate(60, seed=2)
    tok = train_tokenizer(problems, vocab_size=330)
    tinyml.manual_seed(0)
    verifier = Verifier(GPTConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=1, n_head=2, n_embd=16))
    return problems, tok, verifier


def test_the_score_reads_the_last_real_token_and_ignores_padding(setup):
    problems, tok, verifier = setup
    codes = [p.solution for p in problems[:3]]
    ids, last, y, mask = encode_scored(tok, problems[:3], codes, labels=[1, 0, 1])
    assert ids.shape == last.shape == mask.shape and (last.sum(axis=1) == 1).all() and y.tolist() == [1, 0, 1]
    for i, p in enumerate(problems[:3]):  # the mask covers the code and EOS, not the question
        start = len(tok.encode(p.question + "\n"))
        assert mask[i, :start].sum() == 0 and mask[i, start:].sum() == last[i].argmax() + 1 - start
    scores, loss = verifier(tinyml.tensor(ids), tinyml.tensor(last), tinyml.tensor(y))
    hidden, _ = causal_lm_outputs(verifier.trunk, tinyml.tensor(ids))
    h = hidden[-1].detach().numpy()[np.arange(3), last.argmax(axis=1)]  # (3, C) at each row's last token
    w, b = verifier.head.weight.detach().numpy(), verifier.head.bias.detach().numpy()
    np.testing.assert_allclose(scores.detach().numpy(), h @ w[0] + b[0], rtol=1e-5, atol=1e-6)
    want = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(scores.detach().numpy()),
                                                                torch.tensor(y))
    assert float(loss.item()) == pytest.approx(float(want), rel=1e-5)
    # token-level: every masked position predicts the row's label (Cobbe et al.)
    _, token_loss = verifier(tinyml.tensor(ids), tinyml.tensor(last), tinyml.tensor(y), tinyml.tensor(mask))
    per_token = verifier.head(causal_lm_outputs(verifier.trunk, tinyml.tensor(ids))[0][-1]).squeeze(-1)
    t_all = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(per_token.detach().numpy()), torch.tensor(y)[:, None].expand(ids.shape),
        reduction="none")
    want = (t_all * torch.tensor(mask)).sum() / mask.sum()
    assert float(token_loss.item()) == pytest.approx(float(want), rel=1e-5)
    alone = score(verifier, tok, problems[:1], codes[:1])
    together = score(verifier, tok, problems[:3], codes)  # row 0 padded to the longest of three
    np.testing.assert_allclose(alone[0], together[0], rtol=1e-5, atol=1e-6)


def test_batches_are_half_right_and_half_wrong(setup):
    problems, tok, _ = setup
    labels = [1.0] * 5 + [0.0] * 45
    data = encode_scored(tok, problems[:50], [p.solution for p in problems[:50]], labels)
    s = VerifierSampler(*data, batch_size=8, seed=0)
    ids, last, y, mask = s.next_batch()
    assert y.tolist() == [1.0] * 4 + [0.0] * 4 and ids.shape[1] == int(last.argmax(axis=1).max()) + 1
    assert mask.shape == ids.shape
    state = s.state_dict()
    again = s.next_batch()
    s.load_state_dict(state)
    assert all(np.array_equal(a, b) for a, b in zip(again, s.next_batch()))


def test_the_verifier_learns_to_tell_a_right_program_from_a_broken_one(setup):
    problems, tok, _ = setup
    # wrong programs end in a line that returns -1 instead (a change the last token can see)
    right = [(p, p.solution, 1.0) for p in problems[:40]]
    wrong = [(p, _broken(p.solution), 0.0) for p in problems[:40]]
    ids, last, labels, _ = encode_scored(tok, *zip(*(right + wrong)))
    tinyml.manual_seed(0)
    verifier = Verifier(GPTConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=1, n_head=2, n_embd=32))
    cfg = TrainConfig(max_steps=80, lr=3e-3, warmup_steps=5, eval_interval=60, eval_iters=1, progress=False)
    # the last token's loss alone (mask None): the broken line is only visible from the end
    Trainer(verifier, VerifierSampler(ids, last, labels, None, batch_size=16, seed=0), None, cfg).fit()
    held = problems[40:]
    s_right = score(verifier, tok, held, [p.solution for p in held])
    s_wrong = score(verifier, tok, held, [_broken(p.solution) for p in held])
    assert (s_right > s_wrong).mean() >= 0.8


def _broken(code: str) -> str:
    return code + "    return -1\n"


def test_encode_scored_refuses_mismatched_lists(setup):
    problems, tok, _ = setup
    with pytest.raises(ValueError, match="got 2, 1, None"):
        encode_scored(tok, problems[:2], ["x"])


def test_hard_negatives_miscopy_exactly_one_number_of_the_gold_solution():
    import re

    problems = tinygsm.generate(40, seed=5)
    rng = np.random.default_rng(0)
    changed = 0
    for p in problems:
        variants = perturbed_solutions(p, 3, rng)
        assert len(variants) == 3
        gold_numbers = re.findall(r"\d+", p.solution)
        for v in variants:
            numbers = re.findall(r"\d+", v)
            assert len(numbers) == len(gold_numbers)  # one literal rewritten, none added or lost
            assert sum(a != b for a, b in zip(numbers, gold_numbers)) <= 1
            assert re.sub(r"\d+", "#", v) == re.sub(r"\d+", "#", p.solution)
            changed += v != p.solution
    assert changed == 120
    no_numbers = tinygsm.Problem("q", "def solution():\n    return x\n", "rate", 0, ())
    assert perturbed_solutions(no_numbers, 2, rng) == []


def test_lm_targets_are_the_next_solution_tokens_of_right_samples_only(setup):
    problems, tok, _ = setup
    data = encode_scored(tok, problems[:6], [p.solution for p in problems[:6]], [1, 0, 1, 0, 1, 0])
    ids, last, y, mask, targets = VerifierSampler(*data, batch_size=6, seed=0, lm=True).next_batch()
    for i in range(6):
        want = np.full(ids.shape[1], -100)
        if y[i] > 0.5:
            keep = mask[i, 1:] > 0
            want[:-1][keep] = ids[i, 1:][keep]
        np.testing.assert_array_equal(targets[i], want)
    with pytest.raises(ValueError, match="lm=True needs the code mask"):
        VerifierSampler(*data[:3], None, batch_size=2, lm=True)


def test_the_joint_loss_adds_the_weighted_next_token_cross_entropy(setup):
    problems, tok, _ = setup
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=1, n_head=2, n_embd=16)
    tinyml.manual_seed(0)
    joint = Verifier(cfg, lm_weight=0.5)
    data = encode_scored(tok, problems[:4], [p.solution for p in problems[:4]], [1, 0, 1, 1])
    batch = [tinyml.tensor(a) for a in VerifierSampler(*data, batch_size=4, seed=0, lm=True).next_batch()]
    _, loss = joint(*batch)
    _, bce = joint(*batch[:4])
    logits = torch.tensor(causal_lm_outputs(joint.trunk, batch[0])[1].detach().numpy())
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                           torch.tensor(batch[4].numpy()).reshape(-1), ignore_index=-100)
    assert float(loss.item()) == pytest.approx(float(bce.item()) + 0.5 * float(ce), rel=1e-5)
    loss.backward()
    assert joint.trunk.transformer.wte.weight.grad is not None
    with pytest.raises(ValueError, match="lm_weight must be >= 0, got -1"):
        Verifier(cfg, lm_weight=-1)


def test_score_reduces_the_per_token_scores_over_the_solution(setup):
    problems, tok, verifier = setup
    codes = [p.solution for p in problems[:3]]
    ids, last, _, mask = encode_scored(tok, problems[:3], codes)
    per_token = verifier.token_scores(tinyml.tensor(ids)).detach().numpy()
    m = mask > 0
    want = {"last": per_token[np.arange(3), last.argmax(axis=1)],
            "min": np.where(m, per_token, np.inf).min(axis=1),
            "mean": np.where(m, per_token, 0).sum(axis=1) / m.sum(axis=1)}
    for reduce, w in want.items():
        np.testing.assert_allclose(score(verifier, tok, problems[:3], codes, reduce=reduce), w, rtol=1e-5,
                                   atol=1e-6)
    np.testing.assert_allclose(score(verifier, tok, problems[:3], codes), want["last"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="reduce must be one of last, min, mean, lm, got 'max'"):
        score(verifier, tok, problems[:3], codes, reduce="max")


def test_a_contrast_row_is_the_gold_solution_then_k_miscopied_copies():
    problems = tinygsm.generate(5, seed=9)
    rows, codes = contrast_set(problems, 3, np.random.default_rng(0))
    assert rows == problems and all(len(c) == 4 and c[0] == p.solution for p, c in zip(problems, codes))
    assert all(v != p.solution for p, c in zip(problems, codes) for v in c[1:])
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        contrast_set(problems, 0, np.random.default_rng(0))
