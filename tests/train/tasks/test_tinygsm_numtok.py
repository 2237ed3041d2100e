"""The number-token verifier input: one token per number, the generator's BPE elsewhere, and a trunk
initialised from the generator."""
from dataclasses import replace

import numpy as np
import pytest
from tinyml.models import GPT, GPTConfig
from tinyml.train.tasks import tinygsm
from tinyml.train.tasks.tinygsm_model import EOS, train_tokenizer
from tinyml.train.tasks.tinygsm_numtok import NumberTokenizer, load_trunk
from tinyml.train.tasks.tinygsm_verifier import Verifier, encode_scored, score

import tinyml


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(tinygsm.generate(200, seed=0), 300)


def test_every_number_below_the_limit_is_one_token_and_text_keeps_its_bpe(tok):
    vtok = NumberTokenizer(tok, max_number=1000)
    assert vtok.vocab_size == tok.vocab_size + 1000 and vtok.token_to_id(EOS) == tok.token_to_id(EOS)
    ids = vtok.encode("cost = 21 * 2\n    return 900 - cost")
    numbers = [i - vtok.base for i in ids if i >= vtok.base]
    assert numbers == [21, 2, 900]
    assert vtok.decode(ids) == "cost = 21 * 2\n    return 900 - cost"
    # the text between numbers is what the generator's tokenizer makes of it
    assert [i for i in ids if i < vtok.base] == tok.encode("cost = ") + tok.encode(" * ") + tok.encode(
        "\n    return ") + tok.encode(" - cost")
    # a question's number and the code's copy of it are the same token; a miscopy is another one
    question, right, wrong = (vtok.encode(t) for t in ("packs 47 apples", "per_hour = 47", "per_hour = 74"))
    number = [[i for i in ids if i >= vtok.base] for ids in (question, right, wrong)]
    assert number[0] == number[1] == [vtok.base + 47] != number[2]


def test_numbers_out_of_range_or_zero_led_keep_the_digit_tokens(tok):
    vtok = NumberTokenizer(tok, max_number=100)
    for text in ("x = 4500", "x = 05", "x = 1.5", "0", "answer 99 and 100"):
        ids = vtok.encode(text)
        assert vtok.decode(ids) == text
    assert [i - vtok.base for i in vtok.encode("answer 99 and 100") if i >= vtok.base] == [99]
    assert all(i < vtok.base for i in vtok.encode("x = 05"))
    assert vtok.encode("0") == [vtok.base]
    with pytest.raises(ValueError, match="max_number must be an integer >= 10, got 5"):
        NumberTokenizer(tok, max_number=5)


def test_the_trunk_starts_from_the_generator_and_the_number_rows_stay_fresh(tok):
    vtok = NumberTokenizer(tok, max_number=64)
    tinyml.manual_seed(0)
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=1, n_head=2, n_embd=16)
    generator = GPT(cfg)
    verifier = Verifier(replace(cfg, vocab_size=vtok.vocab_size))
    fresh = verifier.trunk.transformer.wte.weight.detach().numpy()[vtok.base:].copy()
    load_trunk(verifier, generator)
    mine = {k: v.detach().numpy() for k, v in verifier.trunk.state_dict().items()}
    theirs = {k: v.detach().numpy() for k, v in generator.state_dict().items()}
    wte = "transformer.wte.weight"
    assert np.array_equal(mine[wte][:vtok.base], theirs[wte])
    assert np.array_equal(mine[wte][vtok.base:], fresh)
    assert all(np.array_equal(mine[k], theirs[k]) for k in theirs if k != wte)
    problems = tinygsm.attach_gold(tinygsm.generate(3, seed=1))
    ids, last, y, mask = encode_scored(vtok, problems, [p.solution for p in problems], [1, 0, 1])
    assert ids.max() >= vtok.base  # numbers went in as number tokens
    scores, loss = verifier(tinyml.tensor(ids), tinyml.tensor(last), tinyml.tensor(y), tinyml.tensor(mask))
    assert scores.shape == (3,) and np.isfinite(loss.item())
    assert score(verifier, vtok, problems, [p.solution for p in problems], reduce="min").shape == (3,)
    other = GPT(replace(cfg, n_embd=8, n_head=2))
    with pytest.raises(ValueError, match=r"is \(\d+, 8\) in the generator and \(\d+, 16\) in the verifier"):
        load_trunk(verifier, other)
