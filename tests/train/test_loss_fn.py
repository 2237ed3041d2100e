"""The Trainer's task seam, loss_fn(model, batch): a task that is not language modelling trains
through the same Trainer and resumes bit-exactly; the distillation example of the package
docstring works as written; a bad loss is refused by name; the generic trainer loads no task."""
import functools
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tinyml.train
from tinyml.models import GPT, GPTConfig
from tinyml.train import TrainConfig, Trainer

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F
from tinyml.data import RandomWindowSampler


class RegressionBatches:
    """Random minibatches (x, y) of a fixed noisy linear problem, y = x @ w + 0.1 noise; its own
    generator, with state_dict/load_state_dict so a resumed run draws the same batches."""

    def __init__(self, n=256, features=5, batch_size=16, seed=0):
        data = np.random.default_rng(123)
        self.x = data.standard_normal((n, features)).astype(np.float32)
        w = data.standard_normal((features, 1)).astype(np.float32)
        self.y = (self.x @ w + 0.1 * data.standard_normal((n, 1))).astype(np.float32)
        self.batch_size, self.seed = batch_size, seed
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def next_batch(self):
        idx = self.rng.integers(0, len(self.x), self.batch_size)
        return self.x[idx], self.y[idx]

    def state_dict(self):
        return {"seed": self.seed, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng = np.random.Generator(np.random.PCG64(state["seed"]))
        self.rng.bit_generator.state = state["rng"]


def mse(model, batch):
    x, y = batch
    assert isinstance(x, tinyml.Tensor) and x.device == tinyml.device("cpu")  # moved by the Trainer
    return F.mse_loss(model(x), y)


def _regression(out_dir, steps, **kw):
    tinyml.manual_seed(0)
    # dropout makes the run depend on tinyml's RNG, which a resume must restore too
    model = nn.Sequential(nn.Linear(5, 32), nn.Tanh(), nn.Dropout(0.1), nn.Linear(32, 1))
    cfg = TrainConfig(**{**dict(max_steps=steps, decay_steps=30, lr=3e-2, warmup_steps=2, weight_decay=0.0,
                                eval_interval=5, eval_iters=2, log_interval=1, grad_accum=2, progress=False),
                         **kw})
    return Trainer(model, RegressionBatches(seed=1), RegressionBatches(seed=2), cfg, out_dir=out_dir,
                   extra_state={"task": "regression"}, loss_fn=mse)


def test_a_regression_task_learns_and_resumes_bit_exactly(tmp_path):
    straight = _regression(str(tmp_path / "a"), steps=30)
    summary = straight.fit()
    # the target's variance is about 5 (unit weights over 5 features); the noise floor is 0.01
    assert np.mean(straight.losses[:3]) > 1.0 and summary["val_loss"] < 0.3, (straight.losses, summary)
    first = _regression(str(tmp_path / "b"), steps=12)
    first.fit()
    second = _regression(str(tmp_path / "b"), steps=30)
    tinyml.manual_seed(999)  # the resume must restore tinyml's RNG, whatever it is now
    second.fit(resume=True)
    assert second.step == 30
    assert first.losses + second.losses == straight.losses  # exact float equality
    for (name, a), b in zip(straight.model.state_dict().items(), second.model.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


@pytest.mark.parametrize("loss_fn, expected", [
    (lambda model, batch: model(batch[0]), r"one-element tensor, got a tensor of shape \(16, 1\)"),
    (lambda model, batch: 0.5, r"one-element tensor, got 0.5"),
])
def test_a_loss_that_is_not_one_element_is_refused_by_name(loss_fn, expected):
    t = _regression(None, steps=1)
    t.loss_fn = loss_fn
    with pytest.raises(TypeError, match=expected):
        t.fit()


def test_loss_fn_must_be_callable():
    with pytest.raises(TypeError, match="loss_fn must be a function .* got str"):
        Trainer(nn.Linear(2, 1), [], loss_fn="mse")


def _docstring_function(doc: str, name: str) -> str:
    """The source of `def name` in an indented docstring example, up to the next blank line."""
    m = re.search(rf"^( *)def {name}\(.*?(?=\n\s*\n)", doc, flags=re.S | re.M)
    assert m, f"no def {name} in the docstring"
    return textwrap.dedent(m.group(0))


def test_the_distillation_example_of_the_package_docstring(tmp_path):
    scope = {"tinyml": tinyml, "F": F}
    exec(_docstring_function(tinyml.train.__doc__, "distill_loss"), scope)
    distill_loss = scope["distill_loss"]
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
    tinyml.manual_seed(0)
    teacher, student = GPT(cfg).eval(), GPT(cfg)
    x = tinyml.tensor(np.random.default_rng(0).integers(0, 11, (4, 8)))
    y = tinyml.tensor(np.random.default_rng(1).integers(0, 11, (4, 8)))
    # alpha=1: the hard loss alone; a student equal to its teacher: a KL of zero
    _, hard = student(x, y)
    hard_only = distill_loss(student, (x, y), teacher, alpha=1.0)
    assert float(hard_only.item()) == pytest.approx(float(hard.item()))
    assert abs(float(distill_loss(teacher, (x, y), teacher, alpha=0.0).item())) < 1e-6
    torch = pytest.importorskip("torch")
    with tinyml.no_grad():
        s, te = (torch.tensor(m(x)[0].numpy()).flatten(0, 1) for m in (student, teacher))
    kl = torch.nn.functional.kl_div(torch.log_softmax(s / 2, -1), torch.softmax(te / 2, -1),
                                    reduction="batchmean")
    soft_only = distill_loss(student, (x, y), teacher, alpha=0.0)
    assert float(soft_only.item()) == pytest.approx(4 * kl.item(), rel=1e-5)  # tau**2 * KL, tau = 2
    data = np.arange(400) % 11
    before = {k: v.numpy().copy() for k, v in teacher.state_dict().items()}
    t = Trainer(student, RandomWindowSampler(data, 8, 4, seed=0), None,
                TrainConfig(max_steps=20, lr=1e-2, warmup_steps=2, progress=False), out_dir=str(tmp_path),
                loss_fn=functools.partial(distill_loss, teacher=teacher))
    t.fit()
    assert np.mean(t.losses[-3:]) < np.mean(t.losses[:3])
    for k, v in teacher.state_dict().items():  # the teacher is read, never trained
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)


def test_the_generic_trainer_loads_no_task():
    code = ("import sys, tinyml.train; print(sorted(m for m in sys.modules if m.startswith(("
            "'tinyml.models', 'tinyml.train.lm', 'tinyml.data'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
