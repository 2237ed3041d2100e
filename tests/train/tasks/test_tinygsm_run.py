"""TinyGSM end to end at the smallest size (`tinyml tinygsm --quick`): every stage runs and writes
its files."""
import json

import pytest
from tinyml.train.cli import main
from tinyml.train.tasks.tinygsm_run import TinyGSMRun, check_run, format_table


def test_quick_run_writes_the_curves_table_plot_and_both_training_folders(tmp_path, capsys):
    out = tmp_path / "gsm"
    assert main(["tinygsm", "--quick", "--out", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "| N | greedy | first | majority | verifier | oracle |" in text
    assert "held-out accuracy: greedy" in text
    result = json.loads((out / "tinygsm.json").read_text())
    assert set(result["curves"]) == {"first", "majority", "verifier", "oracle"}
    assert list(result["curves"]["verifier"]) == ["1", "2", "4"]
    for m in ("first", "majority", "verifier"):  # nothing picks better than "any sample is right"
        assert all(result["curves"][m][n] <= result["curves"]["oracle"][n] + 1e-12 for n in ("1", "2", "4"))
    assert 0.0 <= result["greedy"] <= 1.0 and result["test_problems"] == 8
    for f in ("accuracy_vs_n.png", "tokenizer.json", "generator/checkpoint.safetensors",
              "verifier/checkpoint.safetensors", "verifier/metrics.jsonl"):
        assert (out / f).exists(), f


def test_bad_settings_are_refused_naming_the_values(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"every N must be in 1..samples=4 \(got \[1, 8\]\)"):
        check_run(TinyGSMRun(samples=4, ns=(1, 8)))
    with pytest.raises(ValueError, match="n_embd 30 must be divisible by n_head 4"):
        check_run(TinyGSMRun(n_embd=30))
    with pytest.raises(ValueError, match="verifier_init must be 'generator', 'random' or a generator "
                                         "checkpoint \\(file or run folder\\), got 'teacher': no teacher"):
        check_run(TinyGSMRun(verifier_init="teacher"))
    with pytest.raises(ValueError, match="verifier_from must be 'all' or 'train' \\(got 'test'\\)"):
        check_run(TinyGSMRun(verifier_from="test"))
    with pytest.raises(ValueError, match="split must be one of numbers, wording, instance, template, "
                                         "got 'digits'"):
        check_run(TinyGSMRun(split="digits"))
    with pytest.raises(ValueError, match=r"steps must be >= 1 \(got 800 and candidates \[0, 100\]\)"):
        check_run(TinyGSMRun(steps_candidates=(0, 100)))
    with pytest.raises(ValueError, match=r"target_greedy in \(0, 1\) \(got 1.5\)"):
        check_run(TinyGSMRun(target_greedy=1.5))
    with pytest.raises(ValueError, match="validation_problems must be >= 1, got 0"):
        check_run(TinyGSMRun(validation_problems=0))
    with pytest.raises(ValueError, match="verifier_number_tokens must be 0 \\(off\\) or >= 10, got 3"):
        check_run(TinyGSMRun(verifier_number_tokens=3))
    with pytest.raises(ValueError, match="verifier_score one of last, min, mean, lm \\(got 'max'\\)"):
        check_run(TinyGSMRun(verifier_score="max"))
    with pytest.raises(ValueError, match="must be >= 0, got -1.0, 3000, 4"):
        check_run(TinyGSMRun(verifier_lm=-1.0))
    with pytest.raises(ValueError, match="contrast_problems=10 needs hard_negatives >= 1"):
        check_run(TinyGSMRun(contrast_problems=10, hard_negatives=0))
    with pytest.raises(SystemExit) as exit_:
        main(["tinygsm", "--ns", "1,64", "--samples", "16", "--out", str(tmp_path / "x")])
    assert exit_.value.code == 2
    assert "--ns 1,64: every N must be at most --samples 16" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tinygsm", "--ns", "1,zero", "--out", str(tmp_path / "y")])
    for flag, value in (("--verifier-score", "max"), ("--verifier-numbers", "test"), ("--verifier-lm", "-1"),
                        ("--contrast-problems", "-5"), ("--split", "digits"), ("--generator-steps", "100,0"),
                        ("--generator-steps", "many"), ("--target-greedy", "1.5"), ("--target-greedy", "0"),
                        ("--validation-problems", "0"), ("--verifier-from", "test"),
                        ("--verifier-init", str(tmp_path / "no-such-run"))):
        with pytest.raises(SystemExit) as exit_:
            main(["tinygsm", flag, value, "--out", str(tmp_path / "z")])
        assert exit_.value.code == 2
        assert flag in capsys.readouterr().err


def test_the_table_has_one_row_per_n():
    table = format_table(0.25, {"first": {1: 0.2, 4: 0.2}, "verifier": {1: 0.2, 4: 0.5}})
    assert table.splitlines()[2] == "| 1 | 25.0% | 20.0% | 20.0% |"
    assert table.splitlines()[3] == "| 4 | 25.0% | 20.0% | 50.0% |"


def test_resume_loads_a_finished_stage_instead_of_training_it_again(tmp_path):
    import numpy as np
    from tinyml.models import GPT, GPTConfig
    from tinyml.train.tasks.completion import CompletionSampler
    from tinyml.train.tasks.tinygsm_run import _fit
    from tinyml.train.trainer import TrainConfig, Trainer

    import tinyml

    x = np.random.default_rng(0).integers(0, 10, (8, 6))
    cfg = TrainConfig(max_steps=3, warmup_steps=1, eval_interval=3, eval_iters=1, progress=False)

    def stage():
        tinyml.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8))
        return model, Trainer(model, CompletionSampler(x, x, 2), None, cfg, out_dir=str(tmp_path / "g"))

    model, trainer = stage()
    assert _fit(TinyGSMRun(), trainer)["step"] == 3
    trained = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    model, trainer = stage()  # fresh weights, then the checkpoint: no step is taken again
    summary = _fit(TinyGSMRun(resume=True), trainer)
    assert summary["step"] == 3 and not trainer.losses
    assert all(np.array_equal(v.numpy(), trained[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("split,side", [("numbers", "all"), ("numbers", "train"), ("wording", "all"),
                                        ("wording", "train"), ("instance", "all")])
def test_no_test_problem_reaches_the_generator_or_the_verifier(split, side):
    from tinyml.train.tasks import tinygsm
    from tinyml.train.tasks.tinygsm_run import make_problems

    run = TinyGSMRun(split=split, train_problems=300, test_problems=60, verifier_problems=80,
                     contrast_problems=120, validation_problems=40, verifier_from=side)
    sets = make_problems(run)
    assert [len(ps) for ps in sets] == [300, 80, 60, 120, 40]
    questions = [{p.question for p in ps} for ps in sets]  # train, verifier, test, contrast, validation
    for a in range(5):
        for b in range(a + 1, 5):
            assert not questions[a] & questions[b], (sets._fields[a], sets._fields[b])
    assert all(p.answer is not None for ps in sets for p in ps)
    lo, hi = tinygsm.NUMBER_RANGES["train"]
    assert all(lo <= v <= hi for p in sets.train for v in p.drawn)
    verifier_side = sets.verifier + sets.contrast
    if split == "numbers":  # the generator never sees 51..99
        assert min(v for p in sets.test + sets.validation for v in p.drawn) > hi
        drawn = [v for p in verifier_side for v in p.drawn]
        assert max(drawn) > hi if side == "all" else max(drawn) <= hi
    elif split == "wording":  # the generator never sees a held-out paraphrase; quantities stay in 2..50
        held_out = {(t, w) for t, ws in tinygsm.HELD_OUT_WORDINGS.items() for w in ws}
        assert {(p.template, p.wording) for p in sets.test + sets.validation} <= held_out
        assert not {(p.template, p.wording) for p in sets.train} & held_out
        assert all(lo <= v <= hi for p in sets.test + verifier_side for v in p.drawn)
        seen = {(p.template, p.wording) for p in verifier_side}
        assert bool(seen & held_out) == (side == "all")


def test_the_default_split_keeps_its_earlier_problems():
    # the measured default runs (docs/tinygsm.md) used these streams: the split option must not move them
    from dataclasses import replace

    from tinyml.train.tasks import tinygsm
    from tinyml.train.tasks.tinygsm_run import make_problems

    run = TinyGSMRun(train_problems=50, test_problems=10, verifier_problems=20, contrast_problems=20,
                     validation_problems=5)
    sets = make_problems(run)
    strip = [replace(p, answer=None) for p in sets.train]
    assert strip == tinygsm.generate(50, 0, numbers=(2, 50))
    assert [p.question for p in sets.test] == [p.question for p in tinygsm.generate(10, 1, numbers=(51, 99))]
    pool = [p for p in tinygsm.generate(90, 2, numbers=(2, 99))
            if p.question not in {q.question for q in sets.train + sets.test}]
    assert [p.question for p in sets.verifier] == [p.question for p in pool[:20]]


def test_the_budget_rule_trains_each_candidate_and_keeps_the_nearest_on_validation(tmp_path):
    from tinyml.train.tasks.tinygsm_model import as_pair, train_tokenizer
    from tinyml.train.tasks.tinygsm_run import generator_stage, make_problems

    run = TinyGSMRun(split="wording", train_problems=40, test_problems=4, verifier_problems=4,
                     contrast_problems=0, validation_problems=6, n_layer=1, n_head=2, n_embd=16,
                     steps_candidates=(2, 3), batch_size=4, eval_interval=2, progress=False,
                     out=str(tmp_path), log=lambda *a: None)
    sets = make_problems(run)
    tok = train_tokenizer(sets.train, 300)
    block = max(len(tok.encode(a + b)) for a, b in map(as_pair, sets.train + sets.validation)) + 4
    model, summary, record = generator_stage(run, tok, sets, block, 8, "cpu")
    assert summary["step"] == record["steps"] and set(record["candidates"]) == {"2", "3"}
    gaps = {int(k): abs(a - run.target_greedy) for k, a in record["candidates"].items()}
    assert record["steps"] == min(gaps, key=lambda k: (gaps[k], k))
    for k in (2, 3):
        assert (tmp_path / f"generator_{k}steps" / "checkpoint.safetensors").exists()
    chosen = (tmp_path / f"generator_{record['steps']}steps" / "checkpoint.safetensors").read_bytes()
    assert (tmp_path / "generator" / "checkpoint.safetensors").read_bytes() == chosen


def test_the_verifier_can_start_from_another_generator_checkpoint_and_read_number_tokens(tmp_path):
    from dataclasses import replace

    import numpy as np
    from tinyml.models import GPT, GPTConfig
    from tinyml.train.tasks import tinygsm
    from tinyml.train.tasks.tinygsm_model import train_tokenizer
    from tinyml.train.tasks.tinygsm_numtok import NumberTokenizer
    from tinyml.train.tasks.tinygsm_run import train_verifier
    from tinyml.train.trainer import Trainer

    import tinyml

    problems = tinygsm.attach_gold(tinygsm.generate(20, seed=5))
    tok = train_tokenizer(problems, 300)
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=160, n_layer=1, n_head=2, n_embd=16)
    tinyml.manual_seed(1)
    generator, other = GPT(cfg), GPT(cfg)
    Trainer(other, [], out_dir=str(tmp_path / "other")).save_checkpoint()
    samples = [[p.solution, p.solution.replace("def", "df")] for p in problems]
    correct = np.array([[True, False]] * len(problems))
    run = TinyGSMRun(verifier_init=str(tmp_path / "other"), verifier_number_tokens=64, verifier_steps=1,
                     verifier_lr=1e-12, batch_size=4, out=str(tmp_path), progress=False)
    verifier, vtok, summary = train_verifier(run, tok, generator, problems, samples, correct, "cpu")
    assert isinstance(vtok, NumberTokenizer) and summary["step"] == 1
    assert (tmp_path / "verifier_numtok64" / "checkpoint.safetensors").exists()
    start = other.state_dict()["transformer.h.0.attn.c_attn.weight"].detach().numpy()
    mine = verifier.trunk.state_dict()["transformer.h.0.attn.c_attn.weight"].detach().numpy()
    assert np.allclose(mine, start, atol=1e-6)  # the other checkpoint's weights, not the generator's
    own = generator.state_dict()["transformer.h.0.attn.c_attn.weight"].detach().numpy()
    assert not np.allclose(start, own)
    wide = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=160, n_layer=1, n_head=2, n_embd=32))
    Trainer(wide, [], out_dir=str(tmp_path / "wide")).save_checkpoint()
    with pytest.raises(ValueError, match="is not a generator of this run's shape"):
        train_verifier(replace(run, verifier_init=str(tmp_path / "wide")), tok, generator, problems,
                       samples, correct, "cpu")
