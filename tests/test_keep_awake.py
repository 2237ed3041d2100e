"""csrc/keep_awake.cpp and tinyml.backends.cpu.keep_awake: the SCHED_IDLE spinners a compiled step's
replay arms (docs/gpt_step_cpu.md "Session 11"). They change no result: a compiled GPT step gives the
same bits with them on and off, and their arming follows the switch and the thread count."""
from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pytest

import tinyml
from tinyml.backends import cpu

pytestmark = pytest.mark.skipif(not cpu.available(), reason="needs the C++ extension")


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


@pytest.fixture
def threads():
    before, on = tinyml.get_num_threads(), cpu.keep_awake_enabled()
    yield
    tinyml.set_num_threads(before)
    cpu.set_keep_awake(on)
    cpu._C.keep_awake_end()


def test_begin_end_and_info(threads):
    C = cpu._C
    tinyml.set_num_threads(max(2, _cpus()))
    n = C.keep_awake_begin(1.0)
    expected = _cpus() if _cpus() >= 2 else 0
    assert n == expected
    count, armed, spins, refused = C.keep_awake_info()
    assert armed is (n > 0)
    assert refused == 0  # SCHED_IDLE needs no privilege on Linux
    C.keep_awake_end()
    assert C.keep_awake_info()[1] is False
    if n:
        assert count == n


def test_nested_begins_stay_armed_until_the_last_end(threads):
    C = cpu._C
    tinyml.set_num_threads(max(2, _cpus()))
    if C.keep_awake_begin(1.0) == 0:
        pytest.skip("no spinners on this machine")
    assert C.keep_awake_begin(float("inf")) > 0  # a long cap is clamped, not an overflow
    C.keep_awake_end()
    assert C.keep_awake_info()[1] is True
    C.keep_awake_end()
    assert C.keep_awake_info()[1] is False
    C.keep_awake_end()  # one end too many changes nothing
    assert C.keep_awake_info()[1] is False


def test_one_thread_arms_nothing(threads):
    tinyml.set_num_threads(1)
    assert cpu._C.keep_awake_begin(1.0) == 0
    assert cpu._C.keep_awake_info()[1] is False


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_max_seconds_must_be_positive(bad):
    with pytest.raises(ValueError, match="max_seconds > 0"):
        cpu._C.keep_awake_begin(bad)


def test_context_manager_follows_the_switch(threads):
    tinyml.set_num_threads(max(2, _cpus()))
    cpu.set_keep_awake(False)
    with cpu.keep_awake():
        assert cpu._C.keep_awake_info()[1] is False
    cpu.set_keep_awake(True)
    with cpu.keep_awake():
        armed = cpu._C.keep_awake_info()[1]
    assert armed == (_cpus() >= 2)
    assert cpu._C.keep_awake_info()[1] is False  # disarmed on the way out


def test_context_manager_disarms_on_error(threads):
    tinyml.set_num_threads(max(2, _cpus()))
    with pytest.raises(RuntimeError, match="boom"):
        with cpu.keep_awake():
            raise RuntimeError("boom")
    assert cpu._C.keep_awake_info()[1] is False


def _gpt_losses_and_weights(keep: bool, steps: int = 4):
    from tinyml.models import GPT, GPTConfig

    cpu.set_keep_awake(keep)
    tinyml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=16, activation="gelu_new"))
    opt = tinyml.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)

    def train_step(x, y):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    step = tinyml.compile(train_step)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        x, y = (tinyml.tensor(rng.integers(0, 17, (3, 8))) for _ in range(2))
        losses.append(step(x, y).item())
    assert "replaying" in step.explain()
    return losses, [p.detach().numpy().copy() for p in model.parameters()]


def test_compiled_step_is_bit_identical_with_and_without_spinners(threads):
    tinyml.set_num_threads(2)
    spins = cpu._C.keep_awake_info()[2]
    on_losses, on_weights = _gpt_losses_and_weights(True)
    if _cpus() == 2:  # the replays armed the spinners (2 replays, one episode per spinner each at most)
        assert cpu._C.keep_awake_info()[0] == 2
        assert cpu._C.keep_awake_info()[2] >= spins
    off_losses, off_weights = _gpt_losses_and_weights(False)
    assert on_losses == off_losses
    for a, b in zip(on_weights, off_weights):
        assert a.tobytes() == b.tobytes()
    assert cpu._C.keep_awake_info()[1] is False


def _child(queue):
    tinyml.set_num_threads(max(2, _cpus()))
    n = cpu._C.keep_awake_begin(0.5)
    info = cpu._C.keep_awake_info()
    cpu._C.keep_awake_end()
    queue.put((n, info[0]))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_spinners(threads):
    tinyml.set_num_threads(max(2, _cpus()))
    cpu._C.keep_awake_begin(0.5)  # the parent's spinners exist before the fork
    cpu._C.keep_awake_end()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    p = ctx.Process(target=_child, args=(queue,))
    p.start()
    n, count = queue.get(timeout=60)
    p.join(timeout=60)
    assert p.exitcode == 0
    expected = _cpus() if _cpus() >= 2 else 0
    assert n == expected and (count == n or n == 0)
