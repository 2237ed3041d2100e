"""ModelEMA (train/detect/ema.py): the update formula against a direct computation (ultralytics' ModelEMA),
the ramp, integer buffers copied, applied() swapping the weights in and back, and in `tinyml detect train`:
the EMA saved in checkpoints (test_detect_job.py's resume test checks it resumes bit-exactly), what
load_detector returns (and its weights="trained" choice), a resume that would switch it on refused, and the
--ema-decay / --ema-tau flags: validated by the CLI and recorded in the checkpoint."""
import math
import os

import numpy as np
import pytest
from tinyml.models.detection.yolo import Detector
from tinyml.train.checkpoint import load_checkpoint
from tinyml.train.detect.ema import ModelEMA, ema_decay
from tinyml.train.detect.run import DetectRun, load_detector, train_detector

import tinyml
import tinyml.nn as nn


def _small_net():
    tinyml.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Linear(4, 2))


def _perturb(model, rng):
    with tinyml.no_grad():
        for p in model.parameters():
            p.copy_(tinyml.tensor(rng.standard_normal(p.shape).astype(np.float32)))
    bn = model[1]
    bn.running_mean.copy_(tinyml.tensor(rng.standard_normal(3).astype(np.float32)))
    bn.num_batches_tracked.copy_(tinyml.tensor(np.array(rng.integers(100), dtype=np.int64)))


def test_ramp_is_ultralytics():
    assert ema_decay(1, 0.9999, 2000) == pytest.approx(0.9999 * (1 - math.exp(-1 / 2000)), rel=1e-12)
    assert ema_decay(500, 0.9999, 250) == pytest.approx(0.9999 * (1 - math.exp(-2)), rel=1e-12)
    assert ema_decay(10 ** 6, 0.99, 200) == pytest.approx(0.99)


def test_update_formula_on_weights_and_bn_statistics():
    model = _small_net()
    rng = np.random.default_rng(0)
    ema = ModelEMA(model, decay=0.99, tau=3.0)
    expected = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}
    for n in range(1, 6):
        _perturb(model, rng)
        d = ema.update(model)
        assert d == pytest.approx(0.99 * (1 - math.exp(-n / 3.0)))
        for k, w in model.state_dict().items():
            if k.endswith("num_batches_tracked"):  # integers are copied, not averaged
                expected[k] = w.numpy()
            else:
                expected[k] = d * expected[k] + (1 - d) * w.numpy().astype(np.float64)
    assert ema.updates == 5
    for k, v in ema.shadow.items():
        np.testing.assert_allclose(v, expected[k], rtol=1e-5, atol=1e-6, err_msg=k)
        assert v.dtype == model.state_dict()[k].numpy().dtype
    assert ema.shadow["1.num_batches_tracked"] == model[1].num_batches_tracked.numpy()


def test_applied_swaps_the_average_in_and_restores_the_model():
    model = _small_net()
    ema = ModelEMA(model, decay=0.9, tau=1.0)
    _perturb(model, np.random.default_rng(1))
    ema.update(model)
    own = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    with ema.applied(model):
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(v.numpy(), ema.shadow[k], err_msg=k)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), own[k], err_msg=k)
    with pytest.raises(RuntimeError), ema.applied(model):  # restored even when the block raises
        raise RuntimeError("inside")
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), own["0.weight"])


def test_state_round_trip_and_errors():
    model = _small_net()
    ema = ModelEMA(model, decay=0.95, tau=7.0)
    _perturb(model, np.random.default_rng(2))
    ema.update(model)
    other = ModelEMA(_small_net(), decay=0.5, tau=1.0)
    other.load_state_dict(ema.state_dict())
    assert (other.decay, other.tau, other.updates) == (0.95, 7.0, 1)
    for k in ema.shadow:
        np.testing.assert_array_equal(other.shadow[k], ema.shadow[k])
    with pytest.raises(ValueError, match="decay must be in \\(0, 1\\), got 1.5"):
        ModelEMA(model, decay=1.5)
    with pytest.raises(ValueError, match="tau must be > 0 steps, got 0"):
        ModelEMA(model, tau=0)
    with pytest.raises(ValueError, match="keys differ .*missing \\['2.bias', '2.weight'\\]"):
        ema.update(nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3)))


def _spec(out, **kw):
    base = dict(out=str(out), epochs=2, batch=8, img=64, synthetic_train=12, synthetic_val=4,
                synthetic_size=64, progress=False, ema_tau=3.0, arch="yolo")  # the Detector: EMA 0.9999
    return DetectRun(**{**base, **kw})


def test_load_detector_returns_the_ema(tmp_path):
    """The checkpoint keeps the trained weights and the EMA (test_detect_job.py checks that both resume
    bit-exactly); evaluation, train_detector's model and load_detector use the EMA."""
    s = train_detector(_spec(tmp_path / "run", epochs=1), log=lambda *a: None)
    state = load_checkpoint(str(tmp_path / "run" / "checkpoint.safetensors"))
    assert int(state["ema"]["updates"]) == 2 and state["extra"]["ema"] == {"decay": 0.9999, "tau": 3.0}
    key = "head.cls_branches.0.2.bias"
    ema = state["ema"]["weights"][key].numpy()
    assert not np.array_equal(ema, state["model"][key].numpy())
    model, info = load_detector(str(tmp_path / "run"))
    assert isinstance(model, Detector) and info["step"] == 2
    np.testing.assert_array_equal(model.state_dict()[key].numpy(), ema)
    np.testing.assert_array_equal(s["model"].state_dict()[key].numpy(), ema)


def test_ema_off_keeps_the_trained_weights_and_resume_refuses_a_switch(tmp_path):
    s = train_detector(_spec(tmp_path / "plain", ema=False, epochs=1), log=lambda *a: None)
    state = load_checkpoint(str(tmp_path / "plain" / "checkpoint.safetensors"))
    assert "ema" not in state and state["extra"]["ema"] is None
    key = "head.cls_branches.0.2.bias"
    np.testing.assert_array_equal(s["model"].state_dict()[key].numpy(), state["model"][key].numpy())
    with pytest.raises(ValueError, match="another configuration \\(differs in: ema\\)"):
        train_detector(_spec(tmp_path / "plain", ema=True, epochs=2, resume=True), log=lambda *a: None)
    assert os.path.exists(tmp_path / "plain" / "checkpoint.safetensors")


def test_load_detector_weights_choice(tmp_path):
    """weights="trained": the optimizer's last weights from the same checkpoint (bench/detect_bands.py
    --weights scores both); a run without EMA gives its trained weights either way; other values refused."""
    train_detector(_spec(tmp_path / "run", epochs=1), log=lambda *a: None)
    state = load_checkpoint(str(tmp_path / "run" / "checkpoint.safetensors"))
    trained, _ = load_detector(str(tmp_path / "run"), weights="trained")
    for k, v in trained.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state["model"][k].numpy(), err_msg=k)
    with pytest.raises(ValueError, match="weights='last', expected 'ema' or 'trained'"):
        load_detector(str(tmp_path / "run"), weights="last")
    train_detector(_spec(tmp_path / "plain", ema=False, epochs=1), log=lambda *a: None)
    plain = load_checkpoint(str(tmp_path / "plain" / "checkpoint.safetensors"))["model"]
    model, _ = load_detector(str(tmp_path / "plain"), weights="ema")
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), plain[k].numpy(), err_msg=k)


@pytest.mark.parametrize("flag, value, fragment", [
    ("--ema-decay", "1", "must be a finite number"), ("--ema-decay", "0", "must be a finite number"),
    ("--ema-decay", "nan", "must be a finite number"), ("--ema-decay", "x", "expected a number, got 'x'"),
    ("--ema-tau", "0", "must be a finite number"), ("--ema-tau", "-5", "must be a finite number"),
])
def test_ema_flags_are_validated_by_the_cli(tmp_path, capsys, flag, value, fragment):
    from tinyml.train.cli import main

    with pytest.raises(SystemExit) as e:
        main(["detect", "train", flag, value, "--out", str(tmp_path / "run")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and fragment in err and repr(value) in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "run")


def test_ema_flags_reach_the_run(tmp_path, capsys):
    from tinyml.train.cli import main

    out = str(tmp_path / "run")
    assert main(["detect", "train", "--epochs", "1", "--batch", "8", "--img", "64", "--synthetic-train", "8",
                 "--synthetic-val", "2", "--synthetic-size", "64", "--ema-decay", "0.999", "--ema-tau", "20",
                 "--out", out]) == 0
    state = load_checkpoint(os.path.join(out, "checkpoint.safetensors"))
    assert state["extra"]["ema"] == {"decay": 0.999, "tau": 20.0}
    assert float(state["ema"]["decay"]) == 0.999 and float(state["ema"]["tau"]) == 20.0
    assert int(state["ema"]["updates"]) == int(state["step"]) == 1
