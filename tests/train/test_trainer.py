"""The Trainer: schedule, gradient accumulation, exact resume, Ctrl-C, early stop, metrics, learning."""
import json
import math
import os
import signal

import numpy as np
import pytest
from tinyml.models import GPT, GPTConfig
from tinyml.train import TrainConfig, Trainer, WarmupCosine

import tinyml
from tinyml.data import CharTokenizer, RandomWindowSampler, shakespeare_split


def _data(n=4000, vocab=23, seed=0):
    # a learnable stream: a noisy repeating pattern
    rng = np.random.default_rng(seed)
    base = np.arange(n) % vocab
    noise = rng.integers(0, vocab, n)
    return np.where(rng.random(n) < 0.2, noise, base).astype(np.uint16)


def _model(dropout=0.1, vocab=23):
    tinyml.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=dropout))


def _trainer(out_dir=None, steps=20, **kw):
    # decay_steps fixed: a run stopped at 10 of 20 steps has the 20-step schedule
    cfg = TrainConfig(**{**dict(max_steps=steps, decay_steps=20, lr=3e-3, warmup_steps=3, eval_interval=5,
                                eval_iters=2, log_interval=1, grad_accum=2, progress=False), **kw})
    train = RandomWindowSampler(_data(), 8, 4, seed=1)
    val = RandomWindowSampler(_data(seed=1), 8, 4, seed=2)
    return Trainer(_model(), train, val, cfg, out_dir=out_dir, extra_state={"model": "tiny"})


def _weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_warmup_cosine_schedule():
    class Opt:
        param_groups = [{"lr": 0.0}]

    s = WarmupCosine(Opt(), max_lr=1.0, warmup_steps=4, decay_steps=14, min_lr=0.1)
    lrs = [s.lr_at(i) for i in range(16)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[9] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lrs[14] == lrs[15] == 0.1
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    assert Opt.param_groups[0]["lr"] == 0.25
    s.step()
    assert s.get_last_lr() == [0.5]


def test_resume_is_bit_exact(tmp_path):
    straight = _trainer(str(tmp_path / "a"), steps=20)
    straight.fit()
    first = _trainer(str(tmp_path / "b"), steps=10)
    first.fit()
    second = _trainer(str(tmp_path / "b"), steps=20)
    tinyml.manual_seed(12345)  # resume must restore the RNG, whatever it is now
    second.fit(resume=True)
    assert second.step == 20
    assert first.losses + second.losses == straight.losses  # exact float equality
    a, b = _weights(straight.model), _weights(second.model)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    steps = [r["step"] for r in map(json.loads, open(tmp_path / "b" / "metrics.jsonl")) if "loss" in r]
    assert steps == list(range(1, 21))


def test_ctrl_c_saves_a_checkpoint_and_resumes_exactly(tmp_path):
    straight = _trainer(None, steps=12)
    straight.fit()
    t = _trainer(str(tmp_path), steps=12)
    calls = {"n": 0}

    def press_ctrl_c(module, args, output):
        calls["n"] += module.training  # evaluation forwards do not count
        if module.training and calls["n"] == 7 * 2:  # during step 7 (two micro-batches per step)
            os.kill(os.getpid(), signal.SIGINT)

    handle = t.model.register_forward_hook(press_ctrl_c)
    summary = t.fit()
    handle.remove()
    assert summary["stopped"] == "interrupted" and t.step == 7  # the step under way was finished
    assert os.path.exists(tmp_path / "checkpoint.safetensors")
    resumed = _trainer(str(tmp_path), steps=12)
    resumed.fit(resume=True)
    assert t.losses + resumed.losses == straight.losses
    for k, v in _weights(straight.model).items():
        np.testing.assert_array_equal(v, _weights(resumed.model)[k])


def test_gradient_accumulation_equals_one_big_batch():
    data = _data()
    big = [(data[i:i + 8][None].repeat(1, 0), data[i + 1:i + 9][None]) for i in range(0, 64, 8)]
    xs = np.concatenate([b[0] for b in big]).astype(np.int64)
    ys = np.concatenate([b[1] for b in big]).astype(np.int64)
    grads = {}
    for accum, batches in [(1, [(xs, ys)]), (4, [(xs[i:i + 2], ys[i:i + 2]) for i in range(0, 8, 2)])]:
        cfg = TrainConfig(max_steps=1, grad_accum=accum, grad_clip=None, progress=False)
        t = Trainer(_model(dropout=0.0), batches, None, cfg)
        orig = t.optimizer.step

        def capture(orig=orig, accum=accum, t=t):
            grads[accum] = {n: p.grad.numpy().copy() for n, p in t.model.named_parameters()}
            orig()

        t.optimizer.step = capture
        t.fit()
    for name, g in grads[1].items():
        np.testing.assert_allclose(grads[4][name], g, rtol=1e-4, atol=1e-6, err_msg=name)


def test_early_stop_and_metrics(tmp_path):
    t = _trainer(str(tmp_path), steps=200, lr=0.0, min_lr=0.0, early_stop_patience=2, eval_interval=4)
    summary = t.fit()
    assert summary["stopped"] == "early_stop" and t.step == 12  # best at 4, no gain at 8 and 12
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evals] == [4, 8, 12]
    assert {"lr", "grad_norm", "tokens_per_s"} <= set(train[0])
    pytest.importorskip("matplotlib")
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_refuses_another_configuration(tmp_path):
    _trainer(str(tmp_path), steps=2).fit()
    other = _trainer(str(tmp_path), steps=4)
    other.extra_state = {"model": "bigger"}
    with pytest.raises(ValueError, match="another configuration"):
        other.fit(resume=True)


def test_resume_refuses_another_optimization_and_a_shorter_run(tmp_path):
    _trainer(str(tmp_path), steps=10).fit()
    with pytest.raises(ValueError, match=r"trained with lr=0.003, warmup_steps=3; this config has lr=0.01, "
                                         r"warmup_steps=5"):
        _trainer(str(tmp_path), steps=20, lr=0.01, warmup_steps=5).fit(resume=True)
    with pytest.raises(ValueError, match=r"max_steps 5 is below the step of checkpoint .* \(10\)"):
        _trainer(str(tmp_path), steps=5).fit(resume=True)


def test_resume_with_more_steps_stretches_the_schedule(tmp_path):
    _trainer(str(tmp_path), steps=10, decay_steps=10).fit()
    longer = _trainer(str(tmp_path), steps=30, decay_steps=30)
    longer.load_checkpoint()
    s = longer.scheduler
    assert s.last_step == 10 and s.decay_steps == 30  # position from the checkpoint, length from the config
    assert s.get_last_lr()[0] == pytest.approx(s.lr_at(10)) and s.lr_at(10) > s.min_lr


def test_a_fresh_fit_starts_metrics_anew(tmp_path):
    # a run killed before its first checkpoint left metrics behind; starting over must not append to them
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 9.9}) + "\n")
    _trainer(str(tmp_path), steps=3).fit()
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3] and records[0]["loss"] != 9.9


def test_summary_times_training_apart_from_evaluation(monkeypatch):
    # A fake clock: each training step takes exactly 1 s and each evaluation 0.25 s, so the
    # accounting is checked exactly, whatever the machine's speed.
    import types

    from tinyml.train import trainer as trainer_module

    clock = [0.0]
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    step, evaluate, evals = trainer_module.Trainer.train_step, trainer_module.Trainer.evaluate, []

    def timed_step(self):
        clock[0] += 1.0
        return step(self)

    def timed_evaluate(self, *args, **kwargs):
        clock[0] += 0.25
        evals.append(self.step)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(trainer_module.Trainer, "train_step", timed_step)
    monkeypatch.setattr(trainer_module.Trainer, "evaluate", timed_evaluate)
    summary = _trainer(None, steps=4, eval_interval=2).fit()
    assert evals and summary["train_seconds"] == 4.0
    assert summary["ms_per_step"] == 1000.0  # training only: the evaluations are not in it
    assert summary["eval_seconds"] == 0.25 * len(evals)
    assert summary["seconds"] == 4.0 + 0.25 * len(evals)
    assert summary["tokens_per_s"] == pytest.approx(summary["tokens"] / 4.0)


def test_progress_status_in_place_on_a_terminal_and_throttled_on_a_pipe():
    import io

    from tinyml.train.progress import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    bar = ProgressBar(10, stream=term)
    bar.status("evaluating, batch 1/2")
    bar.status("evaluating, batch 2/2")
    bar.message("step 10: val loss 1.0")
    assert term.getvalue().startswith("\revaluating, batch 1/2\revaluating, batch 2/2")
    assert term.getvalue().endswith("step 10: val loss 1.0\n")
    pipe, quiet = io.StringIO(), io.StringIO()
    ProgressBar(10, stream=pipe, status_every_s=0).status("evaluating, batch 1/2")
    ProgressBar(10, stream=quiet, status_every_s=3600).status("evaluating, batch 1/2")
    assert pipe.getvalue() == "evaluating, batch 1/2\n" and quiet.getvalue() == ""


def test_without_matplotlib_a_run_with_a_folder_fails_at_once(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with pytest.raises(ImportError, match="matplotlib is needed to draw loss.png"):
        _trainer(str(tmp_path / "run"), steps=2)
    assert not (tmp_path / "run").exists()


def test_a_tiny_gpt_learns_shakespeare():
    """Loss falls well below the unigram entropy (3.31 nats/char) within seconds."""
    train_text, val_text = shakespeare_split()
    tok = CharTokenizer.from_text(train_text + val_text)
    train = np.array(tok.encode(train_text[:200_000]), dtype=np.uint16)
    val = np.array(tok.encode(val_text[:20_000]), dtype=np.uint16)
    counts = np.bincount(train, minlength=tok.vocab_size) / len(train)
    unigram = -(counts[counts > 0] * np.log(counts[counts > 0])).sum()
    tinyml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=48))
    t = Trainer(model, RandomWindowSampler(train, 32, 16, 0), RandomWindowSampler(val, 32, 16, 1),
                TrainConfig(max_steps=150, lr=3e-3, warmup_steps=10, eval_interval=150, eval_iters=5,
                            progress=False))
    summary = t.fit()
    assert summary["val_loss"] < unigram - 0.5, (summary["val_loss"], unigram)


class _MLMData:
    """Map-style dataset of dict samples: a fixed pattern with 15% of positions masked (id 1)."""

    def __init__(self, n=64, T=12, vocab=20):
        rng = np.random.default_rng(0)
        self.items = []
        for _ in range(n):
            ids = (np.arange(T) + rng.integers(0, vocab)) % (vocab - 2) + 2
            labels = np.full(T, -100)
            pos = rng.random(T) < 0.15
            labels[pos], ids = ids[pos], np.where(pos, 1, ids)
            self.items.append({"input_ids": ids, "labels": labels})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_one_loop_serves_bert_with_a_dataloader_and_llama():
    from tinyml.models import BertConfig, BertForMaskedLM, Llama, LlamaConfig

    from tinyml.data import DataLoader

    tinyml.manual_seed(0)
    bert = BertForMaskedLM(BertConfig(vocab_size=20, hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=16,
                                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    loader = DataLoader(_MLMData(), batch_size=8, shuffle=True, seed=0, drop_last=True)
    t = Trainer(bert, loader, None, TrainConfig(max_steps=60, lr=1e-2, warmup_steps=5, progress=False))
    t.fit()
    assert np.mean(t.losses[-5:]) < np.mean(t.losses[:5]) - 0.5
    llama = Llama(LlamaConfig(vocab_size=23, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                              num_key_value_heads=2, z_loss=True, qk_layernorm=True))
    t = Trainer(llama, RandomWindowSampler(_data(), 8, 8, seed=0), None,
                TrainConfig(max_steps=30, lr=3e-3, warmup_steps=2, progress=False))
    t.fit()
    assert np.mean(t.losses[-5:]) < np.mean(t.losses[:5]) - 0.5


def test_optim_hints_give_their_own_group_and_keep_their_ratio_under_the_schedule():
    """A module's optim_hints (the SSMs' A and dt) take no weight decay and a capped rate, and the
    schedule moves that rate by the same factor as the others'."""
    import tinyml.nn as nn

    from tinyml.train.trainer import make_optimizer

    class Hinted(nn.Module):
        optim_hints = {"A": {"weight_decay": 0.0, "lr": 1e-3}}

        def __init__(self):
            super().__init__()
            self.A = nn.Parameter(tinyml.randn(4, 4))
            self.proj = nn.Linear(4, 4)

    model = Hinted()
    opt = make_optimizer(model, lr=1e-2, weight_decay=0.1)
    groups = [(len(g["params"]), g["weight_decay"], g["lr"]) for g in opt.param_groups]
    assert groups == [(1, 0.1, 1e-2), (1, 0.0, 1e-2), (1, 0.0, 1e-3)]  # proj.weight, proj.bias, A
    sched = WarmupCosine(opt, max_lr=1e-2, warmup_steps=2, decay_steps=10)
    for _ in range(5):
        sched.step()
        rule, hinted = opt.param_groups[0]["lr"], opt.param_groups[2]["lr"]
        assert hinted == pytest.approx(rule * 0.1)
