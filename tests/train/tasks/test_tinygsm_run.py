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
    with pytest.raises(ValueError, match="verifier_init must be 'generator' or 'random', got 'teacher'"):
        check_run(TinyGSMRun(verifier_init="teacher"))
    with pytest.raises(ValueError, match="verifier_numbers must be 'all' or 'train' \\(got 'test'\\)"):
        check_run(TinyGSMRun(verifier_numbers="test"))
    with pytest.raises(ValueError, match="verifier_score one of last, min, mean \\(got 'max'\\)"):
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
                        ("--contrast-problems", "-5")):
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


@pytest.mark.parametrize("numbers", ["all", "train"])
def test_no_test_problem_reaches_the_generator_or_the_verifier(numbers):
    from tinyml.train.tasks import tinygsm
    from tinyml.train.tasks.tinygsm_run import make_problems

    run = TinyGSMRun(train_problems=300, test_problems=60, verifier_problems=80, contrast_problems=120,
                     verifier_numbers=numbers)
    train, verifier, test, contrast = make_problems(run)
    assert (len(train), len(verifier), len(test), len(contrast)) == (300, 80, 60, 120)
    questions = [{p.question for p in ps} for ps in (train, verifier, test, contrast)]
    for a in range(4):
        for b in range(a + 1, 4):
            assert not questions[a] & questions[b], (a, b)
    lo, hi = tinygsm.NUMBER_RANGES["train"]
    assert all(lo <= v <= hi for p in train for v in p.drawn)  # the generator never sees 51..99
    assert min(v for p in test for v in p.drawn) > hi
    drawn = [v for p in verifier + contrast for v in p.drawn]
    assert max(drawn) > hi if numbers == "all" else max(drawn) <= hi
    assert all(p.answer is not None for p in verifier + contrast)
