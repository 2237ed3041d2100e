"""tinyml.compile: replays bit-identical to eager mode (training steps with AdamW, SGD, Adam, views,
BatchNorm, the Trainer's flag), and the calling conventions (kwargs, no_grad, methods, nesting,
returned inputs and constants). tinyml/compile.py, docs/compile.md; guards and refusals are in
tests/test_compile_guards.py."""
from __future__ import annotations

import numpy as np
import pytest
from compile_helpers import _arrays, _assert_same_state, _batches, _gpt, _mlp, _same, _train_step, _twins

import tinyml
import tinyml.nn.functional as F
from tinyml import nn


def test_gpt_adamw_steps_bit_identical():
    m1, o1, s1, m2, o2, s2 = _twins(_gpt)
    rng = np.random.default_rng(1)
    for _ in range(6):
        x, y = (tinyml.tensor(rng.integers(0, 17, (3, 8))) for _ in range(2))
        a, b = s1(x, y), s2(x, y)
        assert _same(_arrays(a), _arrays(b))
    assert "replaying" in s2.explain() and "4 replays" in s2.explain()
    assert s2.kernel_calls > 50
    _assert_same_state(m1, m2, o1, o2)


def test_mlp_sgd_momentum_bit_identical():
    m1, o1, s1, m2, o2, s2 = _twins(_mlp)
    for x, y in _batches(5):
        assert _same(_arrays(s1(x, y)), _arrays(s2(x, y)))
    _assert_same_state(m1, m2, o1, o2)
    assert "replaying" in s2.explain()


def test_views_transposes_reshapes():
    def build():
        w = nn.Parameter(tinyml.randn(4, 6))
        opt = tinyml.optim.Adam([w], lr=1e-2)

        def loss_fn(_, x):
            h = (x.reshape(2, 3, 4) @ w.T.reshape(4, 6)).transpose(0, 1)  # (3, 2, 6)
            h = h[:, 1:, ::2].reshape(3, -1).permute(1, 0)  # views of kernel outputs
            return (h * h.flip(0)).sum() + w[1:3].sum()
        return w, opt, _train_step(w, opt, loss_fn)

    w1, o1, s1, w2, o2, s2 = _twins(build)
    rng = np.random.default_rng(2)
    for _ in range(5):
        x = tinyml.tensor(rng.standard_normal((6, 4)).astype(np.float32))
        assert _same(_arrays(s1(x)), _arrays(s2(x)))
    assert "replaying" in s2.explain(), s2.explain()
    assert _same(_arrays(w1), _arrays(w2)) and _same(w1.grad.numpy(), w2.grad.numpy())


def test_no_grad_inference_and_kwargs():
    tinyml.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))

    @tinyml.compile
    def predict(x, *, scale=1.0, temperature):
        with tinyml.no_grad():
            logits = model(x) * scale
            return {"probs": F.softmax(logits / temperature, dim=-1), "top": logits.argmax(dim=-1)}

    for x, _ in _batches(4):
        got = predict(x, scale=2.0, temperature=0.5)
        with tinyml.no_grad():
            logits = model(x) * 2.0
            want = F.softmax(logits / 0.5, dim=-1)
        assert _same(got["probs"].numpy(), want.numpy())
        assert _same(got["top"].numpy(), logits.argmax(-1).numpy())
    assert "replaying" in predict.explain()
    predict(x, scale=3.0, temperature=0.5)  # another keyword value: a new signature
    assert "signature 1" in predict.explain()


def test_first_call_may_differ():
    cache = {}

    @tinyml.compile
    def f(x):
        if "w" not in cache:  # lazy state made on the first call only: calls 2 and 3 are compared
            cache["w"] = tinyml.full((3,), 2.0)
        return x * cache["w"] + 1

    for k in range(5):
        x = tinyml.tensor(np.arange(3, dtype=np.float32) + k)
        assert _same(f(x).numpy(), x.numpy() * 2 + 1)
    assert "replaying" in f.explain() and "2 replays" in f.explain()


def test_lr_scheduler_and_returned_python_values():
    def build():
        model, opt, _ = _mlp()
        sched = tinyml.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            return loss, "ok"
        return model, opt, step

    m1, o1, s1, m2, o2, s2 = _twins(build)
    for x, y in _batches(7):
        (a, t1), (b, t2) = s1(x, y), s2(x, y)
        assert _same(_arrays(a), _arrays(b)) and t1 == t2 == "ok"
    assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"] == 0.1 * 0.5 ** 3
    _assert_same_state(m1, m2, o1, o2)


def test_code_and_decorator_options():
    @tinyml.compile(max_recordings=2)
    def f(x):
        return (x + 1).exp()

    for k in range(3):
        f(tinyml.ones(4) * k)
    assert "def replay" in f.code() and f.kernel_calls >= 2
    with pytest.raises(ValueError, match="max_recordings must be at least 2"):
        tinyml.compile(f, max_recordings=1)
    f.reset()
    assert f.explain() == "not called yet"


def test_trainer_compile_flag_is_bit_identical():
    from tinyml.models import GPT, GPTConfig
    from tinyml.train import TrainConfig, Trainer

    from tinyml.data import RandomWindowSampler

    data = (np.arange(2000) * 7 % 23).astype(np.uint16)
    runs = []
    for compiled in (False, True):
        tinyml.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=23, block_size=8, n_layer=1, n_head=2, n_embd=16))
        cfg = TrainConfig(max_steps=6, lr=3e-3, warmup_steps=2, eval_interval=3, eval_iters=1, log_interval=1,
                          grad_clip=0.5, progress=False, compile=compiled)
        t = Trainer(model, RandomWindowSampler(data, 8, 4, seed=1), RandomWindowSampler(data, 8, 4, seed=2),
                    cfg)
        t.fit()
        runs.append((t.losses, {k: v.numpy().copy() for k, v in model.state_dict().items()}, t))
    (l1, w1, _), (l2, w2, t2) = runs
    assert l1 == l2 and all(_same(w1[k], w2[k]) for k in w1)
    assert "replaying" in t2._gradient_step.explain()


def test_returned_inputs_parameters_in_place_writes_and_nesting():
    tinyml.manual_seed(0)
    w = nn.Parameter(tinyml.randn(3))

    @tinyml.compile
    def inner(x):
        return x * w

    @tinyml.compile
    def outer(x, acc):
        acc.add_(inner(x))  # an in-place kernel on an argument; inner runs eagerly inside this recording
        return acc, x, w, (acc * 2).sum()

    acc1 = tinyml.zeros(3)
    for k in range(4):
        x = tinyml.full((3,), float(k + 1))
        with tinyml.no_grad():  # with grad on, acc would carry a graph: refused (test above)
            acc, same_x, same_w, total = outer(x, acc1)
        assert acc is acc1 and same_x is x and same_w is w
        with tinyml.no_grad():
            want = sum((tinyml.full((3,), float(j + 1)) * w for j in range(k + 1)), tinyml.zeros(3))
        assert _same(acc1.numpy(), want.numpy()) and _same(total.numpy(), (want * 2).sum().numpy())
    assert "2 replays" in outer.explain()


def test_method_decorator():
    class Scaler:
        def __init__(self, k):
            self.k = tinyml.full((2,), float(k))

        @tinyml.compile
        def __call__(self, x):
            return x * self.k

    a, b = Scaler(2), Scaler(3)
    for _ in range(3):
        assert _same(a(tinyml.ones(2)).numpy(), np.full(2, 2, np.float32))
        assert _same(b(tinyml.ones(2)).numpy(), np.full(2, 3, np.float32))


def test_returned_constant_is_a_fresh_copy():
    @tinyml.compile
    def f(x):
        return x * 2, tinyml.Tensor._make(np.ones(3, np.float32))  # an array made in numpy, not a kernel

    for _ in range(4):
        doubled, ones = f(tinyml.ones(3))
        assert _same(ones.numpy(), np.ones(3, np.float32))
        ones.add_(1)  # the user's in-place write must not reach the next replay
    assert "2 replays" in f.explain() and ".copy()" in f.code()


def test_conv_batchnorm_running_statistics():
    def build():
        model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
        opt = tinyml.optim.Adam(model.parameters(), lr=1e-2)
        return model, opt, _train_step(model, opt, lambda m, x, y: F.cross_entropy(m(x), y))

    m1, o1, s1, m2, o2, s2 = _twins(build)
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = tinyml.tensor(rng.standard_normal((6, 3, 8, 8)).astype(np.float32))
        y = tinyml.tensor(rng.integers(0, 5, 6))
        assert _same(_arrays(s1(x, y)), _arrays(s2(x, y)))
    assert "3 replays" in s2.explain()
    for (name, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):  # running stats included
        assert _same(np.asarray(a.numpy()), np.asarray(b.numpy())), name
    _assert_same_state(m1, m2, o1, o2)


def test_gpt_bench_worker_compiled_matches_eager(tmp_path):
    from helpers import load_script

    bench = load_script("bench/gpt_cpu.py", "bench_gpt_cpu")
    threads = tinyml.get_num_threads()
    cfg = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch=2)
    try:
        eager = bench.tinyml_worker(cfg, 2, 1, str(tmp_path / "a.safetensors"), False)
        compiled = bench.tinyml_worker(cfg, 2, 1, str(tmp_path / "b.safetensors"), False, compiled=True)
    finally:
        tinyml.set_num_threads(threads)
    assert compiled["losses"] == eager["losses"] and len(compiled["losses"]) == 4
    assert compiled["kernel_calls"] > 20 and "replaying" in compiled["explain"]
    assert 0 <= compiled["replay_python_ms"] <= compiled["replay_ms"]


@pytest.mark.parametrize("family", ["llama", "mamba"])
def test_llama_and_mamba_steps_bit_identical(family):
    import tinyml.models as M

    def build():
        if family == "llama":  # its first call differs from the next (calls 2 and 3 are then compared)
            config = M.LlamaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=16)
            model = M.Llama(config)
        else:
            model = M.MambaLM(M.MambaConfig(vocab_size=50, d_model=16, n_layer=2))
        opt = tinyml.optim.AdamW(model.parameters(), lr=1e-2)

        def loss_fn(m, x, y):
            out = m(x)
            logits = out[0] if isinstance(out, tuple) else getattr(out, "logits", out)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        return model, opt, _train_step(model, opt, loss_fn)

    m1, o1, s1, m2, o2, s2 = _twins(build)
    rng = np.random.default_rng(4)
    for _ in range(5):
        x, y = (tinyml.tensor(rng.integers(0, 50, (2, 8))) for _ in range(2))
        assert _same(_arrays(s1(x, y)), _arrays(s2(x, y)))
    assert "replaying" in s2.explain()
    _assert_same_state(m1, m2, o1, o2)
