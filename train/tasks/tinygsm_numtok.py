"""A verifier input that writes every number as ONE token, so that "is this number of the code one
of the question's?" is a single attention lookup (a query matching a key of the same token) instead
of a digit-by-digit match over a variable number of positions.

    vtok = NumberTokenizer(tok, max_number=4096)       # the generator's BPE + 4096 number tokens
    vtok.encode("cost = 21 * 2")                       # [.. BPE("cost = "), N21, BPE(" * "), N2]
    verifier = Verifier(replace(generator.config, vocab_size=vtok.vocab_size))
    load_trunk(verifier, generator)                    # every weight, and the BPE rows of the embedding

Text between numbers goes through the generator's tokenizer (whose pre-tokenizer already cuts at
digits, so these pieces are tokenized as in the whole text); a maximal run of digits d with no
leading zero (or "0" itself) and value < max_number becomes the token id base + int(d), where base
is the generator's vocabulary size; longer or zero-led runs keep the generator's digit tokens.
encode_scored, VerifierSampler and score (tinygsm_verifier.py) take this tokenizer in place of
the generator's, and the verifier's trunk starts from the generator's weights with the number
tokens' embedding rows at the fresh initialisation (N(0, 0.02), GPT's).
"""
from __future__ import annotations

import re

import numpy as np

import tinyml

from .tinygsm_model import EOS

_DIGITS = re.compile(r"\d+")


class NumberTokenizer:
    """encode(text) -> ids (generator BPE for text, one id per number below max_number); decode(ids)
    inverts it; token_to_id(token) and vocab_size as BPETokenizer."""

    def __init__(self, tok, max_number: int = 4096):
        if not isinstance(max_number, int) or max_number < 10:
            raise ValueError(f"NumberTokenizer: max_number must be an integer >= 10, got {max_number!r}")
        self.tok, self.max_number = tok, max_number
        self.base = tok.vocab_size

    @property
    def vocab_size(self) -> int:
        return self.base + self.max_number

    def token_to_id(self, token: str) -> int | None:
        return self.tok.token_to_id(token)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        at = 0
        for m in _DIGITS.finditer(text):
            if m.start() > at:
                ids += self.tok.encode(text[at:m.start()])
            digits = m.group()
            if (digits == "0" or digits[0] != "0") and int(digits) < self.max_number:
                ids.append(self.base + int(digits))
            else:
                ids += self.tok.encode(digits)
            at = m.end()
        if at < len(text):
            ids += self.tok.encode(text[at:])
        return ids

    def decode(self, ids) -> str:
        out, run = [], []
        for i in (int(x) for x in ids):
            if i >= self.base:
                if run:
                    out.append(self.tok.decode(run))
                    run = []
                out.append(str(i - self.base))
            else:
                run.append(i)
        if run:
            out.append(self.tok.decode(run))
        return "".join(out)

    def __repr__(self) -> str:
        return f"NumberTokenizer(base={self.base}, max_number={self.max_number}, eos={EOS!r})"


def load_trunk(verifier, generator) -> None:
    """The verifier's trunk from the generator's weights: every tensor of equal shape, and for the
    token embedding (whose rows the verifier may extend with number tokens) the generator's rows;
    the added rows keep their initialisation."""
    mine = verifier.trunk.state_dict()
    theirs = generator.state_dict()
    if set(mine) != set(theirs):
        raise ValueError(f"load_trunk: the verifier's trunk and the generator differ in tensors: "
                         f"{sorted(set(mine) ^ set(theirs))[:4]}")
    state = {}
    for name, w in theirs.items():
        target = mine[name]
        if tuple(target.shape) == tuple(w.shape):
            state[name] = w
        elif target.ndim == 2 and target.shape[1] == w.shape[1] and target.shape[0] > w.shape[0]:
            rows = target.detach().numpy().copy()
            rows[:w.shape[0]] = w.detach().numpy()
            state[name] = tinyml.tensor(rows.astype(np.float32), device=target.device)
        else:
            raise ValueError(f"load_trunk: {name} is {tuple(w.shape)} in the generator and "
                             f"{tuple(target.shape)} in the verifier")
    verifier.trunk.load_state_dict(state)
