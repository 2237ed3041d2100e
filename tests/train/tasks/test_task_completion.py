"""Prompt -> completion batches (loss on the completion only), greedy exact match, `tinyml arithmetic`."""
import json
import os

import numpy as np
import pytest
from tinyml.models import GPT, GPTConfig, generate
from tinyml.train.cli import main
from tinyml.train.tasks import arithmetic as ar
from tinyml.train.tasks.arithmetic_run import ArithmeticRun, train_arithmetic
from tinyml.train.tasks.completion import (
    IGNORE,
    CompletionSampler,
    encode_pairs,
    exact_match,
    greedy_completions,
)

import tinyml


def test_targets_cover_the_completion_only():
    tok = ar.tokenizer()
    eos = tok.encode(ar.EOS)[0]
    pairs = [ar.render(1, 2, "add", "plain"), ar.render(128, 367, "add", "plain")]
    inputs, targets = encode_pairs(tok, pairs, pad_id=eos)
    assert inputs.shape == targets.shape == (2, len("128+367=495;") - 1)
    assert tok.decode(inputs[1]) == "128+367=495"
    # row 0: "1+2=3;" -> targets "3;" at positions 3 and 4, the rest ignored
    assert targets[0].tolist() == [IGNORE] * 3 + tok.encode("3;") + [IGNORE] * 6
    assert tok.decode(inputs[0, :5]) == "1+2=3" and (inputs[0, 5:] == eos).all()
    with pytest.raises(ValueError, match="non-empty"):
        encode_pairs(tok, [("", "1;")], pad_id=eos)


def test_sampler_crops_batches_and_resumes_exactly():
    tok = ar.tokenizer()
    pairs = [ar.render(a, b, "add", "reverse") for a, b in [(1, 2), (3, 4), (100, 200)]]
    inputs, targets = encode_pairs(tok, pairs, pad_id=0)
    s = CompletionSampler(inputs[:2], targets[:2], batch_size=4, seed=5)
    x, y = s.next_batch()
    assert x.shape == (4, len("$1+2=3$;") - 1)  # the short rows' own length, not the longest sample's
    state = s.state_dict()
    after = [s.next_batch()[0] for _ in range(3)]
    t = CompletionSampler(inputs[:2], targets[:2], batch_size=4, seed=0)
    t.load_state_dict(state)
    assert all((a == t.next_batch()[0]).all() for a in after)


def test_greedy_completions_match_one_prompt_at_a_time():
    tok = ar.tokenizer()
    eos = tok.encode(ar.EOS)[0]
    tinyml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=24, n_layer=1, n_head=2, n_embd=16))
    prompts = ["1+2=", "12+3=", "4+5=", "99+99="]
    batched = greedy_completions(model, tok, prompts, max_new_tokens=6, stop_id=eos, batch_size=2)
    for prompt, got in zip(prompts, batched):
        ids = generate(model, [tok.encode(prompt)], 6, temperature=0.0, stop_tokens=[eos])[0]
        assert got == tok.decode(ids[len(prompt):])
    first = lambda c: c.split(ar.EOS)[0]  # noqa: E731
    acc, _ = exact_match(model, tok, prompts, [first(c) for c in batched], first, 6, eos)
    assert acc == 1.0
    acc, _ = exact_match(model, tok, prompts, [first(c) + "0" for c in batched], first, 6, eos)
    assert acc == 0.0
    with pytest.raises(ValueError, match="as many answers as prompts"):
        exact_match(model, tok, prompts, ["3"], str, 6, eos)


def test_a_small_gpt_learns_one_digit_addition(tmp_path):
    # 75 of the 100 one-digit additions, 300 steps: the training problems are learned exactly and
    # the 25 held-out ones mostly; the run folder is the Trainer's plus arithmetic.json
    run = ArithmeticRun(fmt="plain", digits=1, samples=2000, test_samples=25, steps=300, batch_size=32,
                        lr=3e-3, n_layer=2, n_head=2, n_embd=64, eval_interval=300, progress=False,
                        out=str(tmp_path))
    result = train_arithmetic(run)
    assert result["accuracy"] >= 0.6, result
    assert result["final_loss"] < 0.3
    for name in ("arithmetic.json", "checkpoint.safetensors", "metrics.jsonl", "loss.png"):
        assert os.path.exists(tmp_path / name)
    assert json.load(open(tmp_path / "arithmetic.json"))["accuracy"] == result["accuracy"]


def test_the_command_prints_held_out_exact_match(tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["arithmetic", "--format", "reverse", "--digits", "1", "--samples", "200", "--test-samples", "10",
            "--steps", "3", "--layers", "1", "--width", "16", "--heads", "2", "--out", out]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "held-out exact match:" in printed and "of 10 problems (greedy)" in printed
    assert json.load(open(os.path.join(out, "arithmetic.json")))["test_problems"] == 10


@pytest.mark.parametrize("flags,message", [
    (["--format", "detailed", "--op", "mul"], "detailed scratchpad is written for addition only"),
    (["--digits", "1", "--test-samples", "30"], "--test-samples 30: at most 25"),
    (["--width", "30", "--heads", "4"], "--width 30 must be divisible by --heads 4"),
])
def test_command_flag_errors_are_one_line(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as e:
        main(["arithmetic", *flags, "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not os.path.exists(tmp_path / "x")


def test_batches_are_numpy_int64():
    tok = ar.tokenizer()
    inputs, targets = encode_pairs(tok, [ar.render(5, 6, "add", "simple")], pad_id=0)
    assert inputs.dtype == targets.dtype == np.int64


def test_the_command_resumes_and_extends_a_run(tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["arithmetic", "--format", "plain", "--digits", "1", "--samples", "100", "--test-samples", "5",
            "--layers", "1", "--width", "16", "--heads", "2", "--eval-interval", "2", "--out", out]
    assert main([*argv, "--steps", "2"]) == 0
    assert main([*argv, "--steps", "4", "--resume"]) == 0
    assert json.load(open(os.path.join(out, "arithmetic.json")))["step"] == 4
    capsys.readouterr()
    assert main([*argv[:-1], str(tmp_path / "empty"), "--resume"]) == 1
    assert "resume: no checkpoint in" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "empty")
