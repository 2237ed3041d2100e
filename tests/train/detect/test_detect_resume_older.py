"""Resuming a CenterNet run folder written by older code (sessions 13-14): its checkpoint's detector config
has no "neck_bottom_up" (the PAN's bottom-up modules were built, and computed for nothing), and, before
session 14, no "reg_radius". train/detect/run.py's resumed_detector builds the model as that config does
and keeps the config as saved; a setting that differs from the checkpoint's is refused, naming it."""
import os

import numpy as np
import pytest
from tinyml.models.detection.centernet import CenterNet
from tinyml.train.checkpoint import load_checkpoint
from tinyml.train.cli import main
from tinyml.train.detect import run as run_module
from tinyml.train.detect.run import DetectRun, load_detector, train_detector

import tinyml

SMALL = dict(batch=8, img=64, synthetic_train=12, synthetic_val=4, synthetic_size=64, progress=False)


def _older_builder(build):
    """build_detector as session 14's code: the PAN's bottom-up modules built, no "neck_bottom_up" key."""
    def older(*args, **kw):
        model = build(*args, **kw)
        if isinstance(model, CenterNet):
            config = {k: v for k, v in model.config.items() if k != "neck_bottom_up"}
            state = model.state_dict()
            tinyml.manual_seed(0)
            model = CenterNet.from_config(config)
            model.load_state_dict({**model.state_dict(), **state})
            model._config.pop("neck_bottom_up")
        return model
    return older


def test_an_older_centernet_run_resumes_bit_exactly(tmp_path, monkeypatch, capsys):
    before = tinyml.get_num_threads()
    tinyml.set_num_threads(1)  # csrc/conv.cpp's weight gradient is bit-reproducible on one thread
    straight, old = str(tmp_path / "straight"), str(tmp_path / "old")
    try:
        with monkeypatch.context() as m:
            m.setattr(run_module, "build_detector", _older_builder(run_module.build_detector))
            train_detector(DetectRun(out=straight, epochs=2, **SMALL), log=lambda *a: None)
            train_detector(DetectRun(out=old, epochs=1, **SMALL), log=lambda *a: None)
        saved = load_checkpoint(os.path.join(old, "checkpoint.safetensors"))["extra"]["detector"]
        assert "neck_bottom_up" not in saved and saved["reg_radius"] == 1
        assert main(["detect", "train", "--resume", "--epochs", "2", "--out", old]) == 0
    finally:
        tinyml.set_num_threads(before)
    a = load_checkpoint(os.path.join(straight, "checkpoint.safetensors"))
    b = load_checkpoint(os.path.join(old, "checkpoint.safetensors"))
    assert a["extra"] == b["extra"] and "neck_bottom_up" not in b["extra"]["detector"]  # kept as saved
    assert any(k.startswith("neck.bottom_up.") for k in b["model"])
    for k in a["model"]:
        np.testing.assert_array_equal(a["model"][k].numpy(), b["model"][k].numpy(), err_msg=k)
    model, _ = load_detector(old)
    assert model.config["neck_bottom_up"] is True


def test_resuming_with_another_model_setting_is_refused(tmp_path):
    out = str(tmp_path / "run")
    train_detector(DetectRun(out=out, epochs=1, **SMALL), log=lambda *a: None)
    with pytest.raises(ValueError, match=r"another configuration \(differs in: detector.reg_radius\)"):
        train_detector(DetectRun(out=out, epochs=2, resume=True, reg_radius=2, **SMALL), log=lambda *a: None)
