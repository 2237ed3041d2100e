"""TinyGSM's generator side: digit-split BPE, question -> solution pairs, sampling N solutions, execution."""
import numpy as np
import pytest
from tinyml.models import GPT, GPTConfig
from tinyml.train.tasks import tinygsm
from tinyml.train.tasks.tinygsm_model import (
    EOS,
    as_pair,
    execute,
    same_answer,
    sample_solutions,
    strip_eos,
    train_tokenizer,
)

import tinyml


@pytest.fixture(scope="module")
def problems():
    return tinygsm.generate(150, seed=0)


@pytest.fixture(scope="module")
def tok(problems):
    return train_tokenizer(problems, vocab_size=400)


def test_the_tokenizer_writes_every_digit_as_its_own_token_and_round_trips(tok, problems):
    text = "Ava packs 1234 cards.\n" + problems[0].solution
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    pieces = [tok.decode([i]) for i in tok.encode("costs $9876 and 50%")]
    assert [p for p in pieces if any(c.isdigit() for c in p)] == ["9", "8", "7", "6", "5", "0"]
    assert tok.token_to_id(EOS) is not None and tok.decode([tok.token_to_id(EOS)]) == EOS
    with pytest.raises(ValueError, match="vocab_size 10"):
        train_tokenizer(problems, vocab_size=10)
    with pytest.raises(ValueError, match="no problems"):
        train_tokenizer([], vocab_size=400)


def test_a_pair_is_the_question_line_then_the_solution_and_eos(problems):
    prompt, completion = as_pair(problems[0])
    assert prompt == problems[0].question + "\n" and completion == problems[0].solution + EOS
    assert strip_eos(completion + "junk") == problems[0].solution


def test_same_answer_compares_numbers_with_a_relative_tolerance_and_rejects_failures():
    assert same_answer(349.2, 349.2) and same_answer(349.20000000001, 349.2) and same_answer(12, 12.0)
    assert not same_answer(349.3, 349.2) and not same_answer(None, 3) and not same_answer(True, 1)
    assert not same_answer(float("nan"), 3.0) and not same_answer("12", 12)
    assert same_answer("a", "a") and not same_answer("a", "b")


def test_execute_runs_each_distinct_program_once_in_the_sandbox():
    good = "def solution():\n    return 6 * 7\n"
    codes = [good, good, "def solution(:\n", "def solution():\n    return open('/etc/passwd').read()\n",
             "def solution():\n    while True:\n        pass\n"]
    answers = execute(codes, workers=2, timeout=2.0)
    assert len(answers) == 4 and answers[good] == 42
    assert [answers[c] for c in codes[2:]] == [None, None, None]


def test_sample_solutions_gives_n_per_problem_reproducibly_and_leaves_the_rng_alone(tok, problems):
    tinyml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=96, n_layer=1, n_head=2, n_embd=16))
    few = problems[:5]
    state = tinyml.random.get_rng_state()
    a = sample_solutions(model, tok, few, n=3, temperature=1.0, max_new_tokens=6, seed=1, rows_per_batch=4)
    b = sample_solutions(model, tok, few, n=3, temperature=1.0, max_new_tokens=6, seed=1)
    assert a == b and [len(row) for row in a] == [3] * 5
    assert all(EOS not in c for row in a for c in row)
    after = tinyml.random.get_rng_state()
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(_flat(state), _flat(after)))
    greedy = sample_solutions(model, tok, few, n=1, temperature=0.0, max_new_tokens=6)
    assert greedy == sample_solutions(model, tok, few, n=1, temperature=0.0, max_new_tokens=6, seed=9)
    with pytest.raises(ValueError, match="n=0"):
        sample_solutions(model, tok, few, n=0, temperature=1.0, max_new_tokens=4)


def _flat(state):
    if isinstance(state, dict):
        return [v for k in sorted(state) for v in _flat(state[k])]
    if isinstance(state, (list, tuple)):
        return [v for s in state for v in _flat(s)]
    return [state]


def test_execute_many_answers_like_execute_with_many_programs_per_process():
    from tinyml.train.tasks.tinygsm_model import execute_many

    codes = [f"def solution():\n    return {i} * 3\n" for i in range(7)]
    codes += ["def solution():\n    return 1 // 0\n",  # raises: None, the rest of its chunk still answers
              "def solution():\n    return 05\n",  # a syntax error: None, no process
              "def solution():\n    return open('/etc/passwd').read()\n",
              "x = 4\ndef solution():\n    return x\n"]  # not a lone solution(): run on its own
    answers = execute_many(codes, chunk=3, workers=2)
    assert [answers[c] for c in codes[:7]] == [3 * i for i in range(7)]
    assert [answers[c] for c in codes[7:10]] == [None, None, None] and answers[codes[10]] == 4
    # a chunk refused as a whole (a name the sandbox forbids) falls back to one process per program
    refused = ["def solution():\n    return 5\n", "def solution():\n    return ().__class__\n"]
    assert execute_many(refused, chunk=8, workers=2) == {refused[0]: 5, refused[1]: None}
