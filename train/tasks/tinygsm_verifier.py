"""TinyGSM's verifier: a small model that scores a (problem, solution) pair by how likely the solution's
executed answer is right, trained on the generator's own samples labelled by execution.

    verifier = Verifier(generator.config); verifier.trunk.load_state_dict(generator.state_dict())
    data = encode_scored(tok, problems, codes, labels)          # ids, last token, labels, code mask
    Trainer(verifier, VerifierSampler(*data, batch_size=32), ...).fit()   # token-level BCE
    scores = score(verifier, tok, problems, codes)              # logits, higher = more likely right

The model is the GPT trunk (token and position embeddings, blocks, final norm) with a scalar head
on every position; the score of a pair is the head on its last token (the EOS after the solution),
or with score(reduce="min") the lowest over the solution's tokens and EOS:

    s_t = w . h_t + b,   score = s_T (or min_t s_t),   y = 1 when the executed answer equals gold
    loss = mean over the solution's tokens t (and EOS) of BCE(sigmoid(s_t), y)

Training every solution token to predict the outcome, not only the last one, is Cobbe et al.'s
token-level verifier (2021, "Training Verifiers to Solve Math Word Problems", section 4.2): many
more targets per sample, and a verifier that generalizes better than a solution-level one. Without
`mask` the loss is the last token's BCE alone.

Batches draw correct and incorrect samples in equal numbers (when both exist), so a generator that
is right 80% of the time does not teach the verifier to say "right" to everything.

Hard negatives (`perturbed_solutions`, an addition to the paper's recipe): the gold solution with
one number literal miscopied the way the generator miscopies (a digit dropped, doubled or changed,
or another number of the question put in its place). They are labelled by execution like every
other sample, and pair with right solutions of the same problem, so the verifier must compare the
code's numbers with the question's instead of judging how usual a solution looks.
`contrast_set` makes such rows without the generator: each problem's gold solution (right) and k
miscopied copies, so the verifier sees many more number comparisons than sampling can afford.

Joint language modelling (Cobbe et al. train the verifier with both objectives): with lm_weight > 0
and a sampler built with lm=True, the loss adds lm_weight * the next-token cross-entropy of the
right solutions' tokens, read from the trunk's own output head (the weights it shares with the
generator it started from), which keeps the copying the generator learned.

`score(..., reduce=...)` turns the per-token scores into one: "last" (Cobbe et al.'s final token),
"min" over the solution's tokens and EOS (the first place a mistake shows: a checker's verdict is
as low as its worst line), or "mean".
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np
from tinyml.models import GPT, GPTConfig
from tinyml.models.transformer.layers import lm_loss

import tinyml
import tinyml.nn.functional as F
from tinyml import nn

from .tinygsm import Problem
from .tinygsm_model import EOS, prompt_of


class Verifier(nn.Module):
    """forward(idx (B, T), last (B, T) one-hot of each row's last token, labels (B,) or None, mask
    (B, T) of the positions trained, or None for the last token only, lm_targets (B, T) or None)
    -> (scores (B,), loss or None); loss = BCE + lm_weight * next-token cross-entropy on lm_targets."""

    def __init__(self, config: GPTConfig, lm_weight: float = 0.0):
        super().__init__()
        if not lm_weight >= 0:
            raise ValueError(f"Verifier: lm_weight must be >= 0, got {lm_weight}")
        self.config = config
        self.lm_weight = float(lm_weight)
        self.trunk = GPT(config)
        self.head = nn.Linear(config.n_embd, 1)

    def hidden(self, idx):
        """The trunk's final-norm hidden states (B, T, C)."""
        T = idx.shape[1]
        tr = self.trunk.transformer
        x = tr.drop(tr.wte(idx) + tr.wpe(tinyml.arange(T, device=idx.device)))
        for i, block in enumerate(tr.h):
            x = block(x, None, i)
        return tr.ln_f(x)

    def token_scores(self, idx):
        """(B, T): the head's logit at every position."""
        return self.head(self.hidden(idx)).squeeze(-1)

    def forward(self, idx, last, labels=None, mask=None, lm_targets=None):
        B, T = idx.shape
        x = self.hidden(idx)
        per_token = self.head(x).squeeze(-1)  # (B, T)
        scores = (per_token * last.to(x.dtype)).sum(dim=1)  # (B,): the last token's
        if labels is None:
            return scores, None
        y = labels.to(scores.dtype)
        if mask is None:
            loss = F.binary_cross_entropy_with_logits(scores, y)
        else:
            w = mask.to(scores.dtype)
            targets = y.unsqueeze(-1).expand(B, T)
            loss = F.binary_cross_entropy_with_logits(per_token, targets, weight=w, reduction="sum") / w.sum()
        if lm_targets is not None and self.lm_weight > 0 and bool((lm_targets != -100).any()):
            tr = self.trunk.transformer
            head = tr.wte.weight if self.config.tie_word_embeddings else self.trunk.lm_head.weight
            loss = loss + self.lm_weight * lm_loss(F.linear(x, head), lm_targets)
        return scores, loss


def encode_scored(tok, problems: Sequence[Problem], codes: Sequence[str],
                  labels: Sequence[float] | None = None, block_size: int | None = None):
    """(ids (N, T) int64 right-padded with EOS, last (N, T) float32 one-hot, labels (N,) float32,
    mask (N, T) float32 over each row's code tokens and EOS): each row is prompt + code + EOS.
    Rows longer than block_size keep their first block_size tokens."""
    if len(problems) != len(codes) or (labels is not None and len(labels) != len(codes)) or not codes:
        raise ValueError(f"encode_scored: need as many problems as codes (and labels), > 0; got "
                         f"{len(problems)}, {len(codes)}, {None if labels is None else len(labels)}")
    eos = tok.token_to_id(EOS)
    starts = [len(tok.encode(prompt_of(p))) for p in problems]
    rows = [tok.encode(prompt_of(p) + c) + [eos] for p, c in zip(problems, codes)]
    if block_size is not None:
        rows = [r[:block_size] for r in rows]
    T = max(len(r) for r in rows)
    ids = np.full((len(rows), T), eos, dtype=np.int64)
    last = np.zeros((len(rows), T), dtype=np.float32)
    mask = np.zeros((len(rows), T), dtype=np.float32)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        last[i, len(r) - 1] = 1.0
        mask[i, min(starts[i], len(r) - 1):len(r)] = 1.0  # at least the last token
    y = np.zeros(len(rows), dtype=np.float32) if labels is None else np.asarray(labels, dtype=np.float32)
    return ids, last, y, mask


class VerifierSampler:
    """Random batches, half correct and half incorrect samples when both kinds exist, cropped to
    their longest row; with lm=True (and a mask) each batch also carries lm_targets, the next token
    at each position of a right sample's solution (-100 elsewhere); state_dict/load_state_dict for
    exact resume."""

    def __init__(self, ids: np.ndarray, last: np.ndarray, labels: np.ndarray, mask: np.ndarray | None,
                 batch_size: int, seed: int = 0, lm: bool = False):
        if batch_size < 1 or len(ids) == 0:
            raise ValueError(f"VerifierSampler: need batch_size >= 1 and rows, got {batch_size}, {len(ids)}")
        if lm and mask is None:
            raise ValueError("VerifierSampler: lm=True needs the code mask (the positions to predict)")
        self.ids, self.last, self.labels, self.mask, self.batch_size = ids, last, labels, mask, batch_size
        self.lm = lm
        self.lengths = last.argmax(axis=1) + 1
        self.pos, self.neg = np.flatnonzero(labels > 0.5), np.flatnonzero(labels <= 0.5)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def next_batch(self):
        if len(self.pos) and len(self.neg):
            half = self.batch_size // 2
            rows = np.concatenate([self.rng.choice(self.pos, half),
                                   self.rng.choice(self.neg, self.batch_size - half)])
        else:
            rows = self.rng.integers(0, len(self.ids), size=self.batch_size)
        T = int(self.lengths[rows].max())
        batch = (self.ids[rows, :T], self.last[rows, :T], self.labels[rows])
        if self.mask is None:
            return batch
        mask = self.mask[rows, :T]
        if not self.lm:
            return (*batch, mask)
        # position t predicts token t + 1 when t + 1 is a solution token (or EOS) of a right sample
        ids = batch[0]
        targets = np.full(ids.shape, -100, dtype=np.int64)
        keep = (mask[:, 1:] > 0) & (batch[2][:, None] > 0.5)
        targets[:, :-1] = np.where(keep, ids[:, 1:], -100)
        return (*batch, mask, targets)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.rng = np.random.default_rng(self.seed)
        self.rng.bit_generator.state = state["rng"]


_NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")


def perturbed_solutions(problem: Problem, k: int, rng: np.random.Generator) -> list[str]:
    """k copies of the problem's solution, each with one number literal miscopied: a digit dropped,
    doubled or replaced, or the literal swapped for another number of the question."""
    spans = [m.span() for m in _NUMBER.finditer(problem.solution)]
    if not spans:
        return []
    others = [str(x) for x in problem.numbers]
    out = []
    for _ in range(k):
        a, b = spans[int(rng.integers(len(spans)))]
        digits = problem.solution[a:b]
        i = int(rng.integers(len(digits)))
        kind = int(rng.integers(4))
        swaps = [x for x in others if x != digits]
        if kind == 0 and len(digits) > 1:
            new = digits[:i] + digits[i + 1:]
        elif kind == 1:
            new = digits[:i] + digits[i] + digits[i:]
        elif kind == 2 and swaps:
            new = swaps[int(rng.integers(len(swaps)))]
        else:
            new = digits[:i] + str((int(digits[i]) + int(rng.integers(1, 10))) % 10) + digits[i + 1:]
        out.append(problem.solution[:a] + new + problem.solution[b:])
    return out


SLOT_KINDS = ("swap", "twice", "percent")
_OWN = {"0", "1", "100"}  # numbers the solutions write on their own (a base case, a percent)


def slot_negatives(problem: Problem, k: int, rng: np.random.Generator) -> list[str]:
    """k copies of the problem's solution with a number in the wrong slot, the errors a generator
    makes that every number check passes (all the numbers are the question's), each kind in turn:
    "swap" exchanges two distinct number literals, "twice" writes one literal where another stands
    (a question number used twice, another missing; never 0, 1 or 100), "percent" changes a
    percentage (the literal before `/ 100`) to 100 minus it or to another number of the question.
    Copies equal to the solution are dropped, so fewer than k may come back; label them by execution."""
    spans = [m.span() for m in _NUMBER.finditer(problem.solution)]
    text = problem.solution
    values = [text[a:b] for a, b in spans]
    out: list[str] = []
    for j in range(k):
        kind = SLOT_KINDS[j % len(SLOT_KINDS)]
        pct = [i for i, (a, b) in enumerate(spans) if text[b:].startswith(" / 100") and values[i] != "100"]
        if kind == "percent" and pct:
            i = pct[int(rng.integers(len(pct)))]
            others = [str(x) for x in problem.numbers if str(x) != values[i]]
            new = str(100 - int(values[i])) if not others or rng.random() < 0.5 else \
                others[int(rng.integers(len(others)))]
            code = text[:spans[i][0]] + new + text[spans[i][1]:]
        else:
            pairs = [(i, m) for i in range(len(spans)) for m in range(len(spans))
                     if values[i] != values[m] and not {values[i], values[m]} & _OWN]
            if not pairs:
                continue
            i, m = pairs[int(rng.integers(len(pairs)))]
            new = dict.fromkeys(range(len(spans)))
            new[i] = values[m]
            if kind == "swap":
                new[m] = values[i]
            code, last = "", 0
            for n, (a, b) in enumerate(spans):
                code += text[last:a] + (values[n] if new[n] is None else new[n])
                last = b
            code += text[last:]
        if code != text:
            out.append(code)
    return out


def contrast_set(problems: Sequence[Problem], k: int, rng: np.random.Generator):
    """(problems, codes), one row per problem: its gold solution followed by k miscopied copies
    (perturbed_solutions); label them by executing them (tinygsm_model.execute_many)."""
    if k < 1:
        raise ValueError(f"contrast_set: k must be >= 1, got {k}")
    return list(problems), [[p.solution, *perturbed_solutions(p, k, rng)] for p in problems]


REDUCTIONS = ("last", "min", "mean", "lm")


def score(verifier: Verifier, tok, problems: Sequence[Problem], codes: Sequence[str],
          batch_size: int = 256, reduce: str = "last") -> np.ndarray:
    """The verifier's logit for each (problem, code) pair, (N,) float64: the last token's, or the
    min or mean over the solution's tokens and EOS (`reduce`); "lm": log_likelihood() under the
    verifier's own language-modelling head instead of its scalar head."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"score: reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    if not codes:
        return np.zeros(0)
    if reduce == "lm":
        return log_likelihood(verifier, tok, problems, codes, batch_size)
    ids, last, _, mask = encode_scored(tok, problems, codes, block_size=verifier.config.block_size)
    device = next(iter(verifier.parameters())).device
    out = np.zeros(len(codes))
    for rows, T in _length_batches(verifier, last, batch_size):
        per_token = verifier.token_scores(tinyml.tensor(ids[rows, :T], device=device))
        per_token = per_token.numpy().astype(np.float64)
        m = mask[rows, :T] > 0
        if reduce == "last":
            out[rows] = per_token[np.arange(len(rows)), last[rows, :T].argmax(axis=1)]
        elif reduce == "min":
            out[rows] = np.where(m, per_token, np.inf).min(axis=1)
        else:
            out[rows] = np.where(m, per_token, 0.0).sum(axis=1) / m.sum(axis=1)
    return out


def _length_batches(model, last: np.ndarray, batch_size: int):
    """(rows, T) batches of the rows of `last` (one-hot last positions), similar lengths together (less
    padding per batch), T each batch's length; run in eval mode without grad, the model's mode restored."""
    order = np.argsort(last.argmax(axis=1))
    was_training = model.training
    model.eval()
    try:
        with tinyml.no_grad():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                yield rows, int(last[rows].argmax(axis=1).max()) + 1
    finally:
        model.train(was_training)


def log_likelihood(model, tok, problems: Sequence[Problem], codes: Sequence[str],
                   batch_size: int = 256) -> np.ndarray:
    """(N,) float64: log p(code + EOS | question) = sum over the solution's tokens t (and EOS) of
    log softmax(logits_{t-1})[x_t], under a GPT (a generator checkpoint) or a Verifier's trunk and
    its language-modelling head. Rows are cropped to the model's context, as encode_scored does."""
    gpt = model.trunk if isinstance(model, Verifier) else model
    if not codes:
        return np.zeros(0)
    ids, last, _, mask = encode_scored(tok, problems, codes, block_size=gpt.config.block_size)
    device = next(iter(gpt.parameters())).device
    out = np.zeros(len(codes))
    for rows, T in _length_batches(gpt, last, batch_size):
        logits, _ = gpt(tinyml.tensor(ids[rows, :T], device=device))
        z = logits.float().numpy().astype(np.float64)[:, :-1]
        z = z - z.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(logp, ids[rows, 1:T, None], axis=-1)[..., 0]
        # position t - 1 predicts token t: the solution's tokens (mask) after the first position
        out[rows] = (picked * mask[rows, 1:T]).sum(axis=1)
    return out
