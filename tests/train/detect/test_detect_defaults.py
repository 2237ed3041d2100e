"""`tinyml detect train`'s defaults per architecture (train/detect/settings.py): crop and EMA decay resolved
once and recorded; the run's test-time augmentation stored, used by validation and by predict / eval unless
--tta overrides it; the validation cadence (auto and integer, the last epoch always validated); and a run
folder written before these defaults (its detect.json without the new keys) loading, resuming bit-exactly and
predicting as before."""
import json
import os

import numpy as np
import pytest
from tinyml.train.checkpoint import load_checkpoint, save_checkpoint
from tinyml.train.cli import main
from tinyml.train.detect import predict as predict_module
from tinyml.train.detect.loop import auto_eval_epochs
from tinyml.train.detect.run import DetectRun, load_detector, read_run_record, train_detector
from tinyml.train.detect.settings import LEGACY, upgrade_run_record
from tinyml.train.runs import UsageError

import tinyml

SMALL = dict(batch=8, img=64, synthetic_train=12, synthetic_val=4, synthetic_size=64, progress=False)


def _records(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("kw, crop, decay", [
    ({}, 64, 0.999),  # CenterNet at heatmap stride 1: a quarter of img, the short EMA
    ({"arch": "yolo"}, 128, 0.9999),  # the Detector's measured defaults
    ({"heatmap_stride": 4}, 128, 0.999),  # CenterNet at stride 2 / 4: half of img
    ({"heatmap_stride": 2}, 128, 0.999),
    ({"img": 320}, 80, 0.999),
    ({"img": 96}, 16, 0.999),  # 24 rounded down to a multiple of 16
    ({"img": 48}, 0, 0.999),  # 12: below the largest stride, whole images
    ({"arch": "yolo", "img": 96, "strides": (4, 8, 16, 32)}, 32, 0.9999),
    ({"crop": 0, "ema_decay": 0.99}, 0, 0.99),  # given values are kept
    ({"arch": "yolo", "crop": 96}, 96, 0.9999),
])
def test_resolved_defaults_per_architecture(kw, crop, decay):
    spec = DetectRun(out="/nonexistent", **kw)
    resolved = spec.resolved()
    assert (resolved.crop, resolved.ema_decay) == (crop, decay)
    assert spec.crop == kw.get("crop") and spec.ema_decay == kw.get("ema_decay")  # the original untouched
    assert resolved.train_crop == spec.train_crop == (crop or None)
    assert resolved.resolved() == resolved


def test_settings_errors_name_the_values():
    with pytest.raises(UsageError, match="--tta hx|tta must be a string of distinct letters.*'hx'"):
        DetectRun(out="/nonexistent", tta="hx").check()
    with pytest.raises(UsageError, match="--eval-every 0: expected a positive number of epochs or 'auto'"):
        DetectRun(out="/nonexistent", eval_every=0).check()
    with pytest.raises(UsageError, match="--eval-every 'often'"):
        DetectRun(out="/nonexistent", eval_every="often").check()
    assert DetectRun(out="/nonexistent", tta="none").resolved().tta == ""


def test_reg_radius_and_vflip_reach_the_model_and_the_augmentation(tmp_path, monkeypatch):
    from tinyml.train.detect import run as run_module
    seen = {}
    real = run_module.AugmentedDataset

    def spy(*args, **kw):
        seen.update(kw)
        return real(*args, **kw)
    monkeypatch.setattr(run_module, "AugmentedDataset", spy)
    train_detector(DetectRun(out=str(tmp_path / "a"), epochs=1, **SMALL))
    model, _ = load_detector(str(tmp_path / "a"))
    assert model.config["reg_radius"] == 1 and seen["vflip"] == 0.5 and seen["hflip"] == 0.5
    assert seen["crop_anywhere"] == 0.3
    assert read_run_record(str(tmp_path / "a"))["reg_radius"] == 1
    main(["detect", "train", "--out", str(tmp_path / "b"), "--epochs", "1", "--reg-radius", "0",
          "--vflip", "0", "--crop-anywhere", "0", "--img", "64", "--batch", "8", "--synthetic-train", "12",
          "--synthetic-val", "4", "--synthetic-size", "64"])
    model, _ = load_detector(str(tmp_path / "b"))
    assert model.config["reg_radius"] == 0 and seen["vflip"] == 0.0 and seen["crop_anywhere"] == 0.0
    record = read_run_record(str(tmp_path / "b"))
    assert (record["reg_radius"], record["vflip"], record["crop_anywhere"]) == (0, 0.0, 0.0)
    with pytest.raises(UsageError, match="--crop-anywhere -0.1: expected a probability from 0 to 1"):
        DetectRun(out="/nonexistent", crop_anywhere=-0.1).check()
    with pytest.raises(UsageError, match="--vflip 1.5: expected a probability from 0 to 1"):
        DetectRun(out="/nonexistent", vflip=1.5).check()
    with pytest.raises(UsageError, match="--reg-radius 9: expected 0 to 4 cells"):
        DetectRun(out="/nonexistent", reg_radius=9).check()


def test_auto_eval_epochs():
    """max(1, ceil(epochs / 10), ceil(cost / 0.1)): ~10 validations, their compute ~10 % of training's."""
    assert auto_eval_epochs(30, 0.0) == 3 and auto_eval_epochs(5, 0.0) == 1 and auto_eval_epochs(0, 0.0) == 1
    assert auto_eval_epochs(280, 0.5) == 28
    cost = 4 * 100 * 256 ** 2 / (3 * 400 * 64 ** 2)  # the default run: hv, 100 val / 400 train, crop 64
    assert auto_eval_epochs(280, cost) == 54 and auto_eval_epochs(30, cost) == 54
    assert auto_eval_epochs(100, 0.3) == 10  # exact multiples do not round up


@pytest.mark.parametrize("eval_every, steps", [(2, [2, 3]), ("auto", [3])])
def test_validation_cadence_and_the_last_epoch(tmp_path, eval_every, steps):
    """8 images in batches of 8: a step an epoch, 3 epochs; validations (and checkpoints) at the multiples
    of eval_every and at the last step. auto: this set's validation (2 val images of 64 px vs 8 training
    crops of 16 px, 4 views) costs ~5 epochs, so only the last step is validated. (eval_every 1: the old
    run folder's test below.)"""
    out = str(tmp_path / "run")
    train_detector(DetectRun(out=out, epochs=3, eval_every=eval_every, **{**SMALL, "synthetic_train": 8,
                                                                         "synthetic_val": 2}),
                   log=lambda *a: None)
    val = [r for r in _records(out) if "val_AP50" in r]
    assert [r["step"] for r in val] == steps and all(r["tta"] == "hv" for r in val)


def test_tta_is_recorded_used_by_validation_and_overridable(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "run")
    assert main(["detect", "train", "--epochs", "1", "--batch", "8", "--img", "64", "--synthetic-train", "8",
                 "--synthetic-val", "2", "--synthetic-size", "64", "--tta", "h", "--out", out]) == 0
    assert read_run_record(out)["tta"] == "h" and load_detector(out)[1]["tta"] == "h"
    assert [r["tta"] for r in _records(out) if "val_AP50" in r] == ["h"]
    used = []
    original = predict_module.predict_images

    def spy(model, images, img, conf, iou=0.6, max_det=300, tta=""):
        used.append(tta)
        return original(model, images, img, conf, iou, max_det, tta)

    monkeypatch.setattr(predict_module, "predict_images", spy)
    val = os.path.join(out, "data", "val")
    for flags, expected in (([], "h"), (["--tta", "none"], ""), (["--tta", "hvt"], "hvt")):
        used.clear()
        assert main(["detect", "predict", "--ckpt", out, "--source", val, "--out", str(tmp_path / "p"),
                     "--no-draw", *flags]) == 0
        assert used and set(used) == {expected}
    saved = str(tmp_path / "m.json")
    for flags, expected in (([], "h"), (["--tta", "none"], "")):
        assert main(["detect", "eval", "--ckpt", out, "--data", os.path.join(out, "data"), "--save-json",
                     saved, *flags]) == 0
        assert f"tta {expected or 'none'}" in capsys.readouterr().out
        with open(saved) as f:
            assert json.load(f)["tta"] == expected
    # --tta may change on --resume (an evaluation setting); the record and the checkpoint follow
    assert main(["detect", "train", "--resume", "--epochs", "2", "--tta", "none", "--out", out]) == 0
    assert read_run_record(out)["tta"] == "" and load_detector(out)[1]["tta"] == ""
    assert [r["tta"] for r in _records(out) if "val_AP50" in r] == ["h", "none"]


# ---- a run folder of the earlier defaults --------------------------------------------------------------
OLD = dict(arch="yolo", heatmap_stride=4, ema_decay=0.9999, eval_every=1, tta="", **SMALL)


def _make_old(folder):
    """Rewrite a run folder as the code before these defaults left it: detect.json without tta, crop None
    (then: half of img), no "tta" in the checkpoint."""
    record = read_run_record(folder)
    del record["tta"]
    record["crop"] = None
    with open(os.path.join(folder, "detect.json"), "w") as f:
        json.dump(record, f)
    path = os.path.join(folder, "checkpoint.safetensors")
    state = load_checkpoint(path)
    del state["tta"]
    save_checkpoint(path, state)


def test_upgrade_run_record():
    old = {"arch": "centernet", "heatmap_stride": 1, "img": 256, "crop": None, "ema_decay": 0.9999,
           "eval_every": 1}
    # then, crop None meant half of img, and CenterNet regressed its centre cells alone
    # (and never vertically flipped)
    then = {"reg_radius": 0, "vflip": 0.0, "crop_anywhere": 0.0}
    assert upgrade_run_record(old) == {**old, "crop": 128, "tta": "", **then}
    assert upgrade_run_record({"img": 64, "crop": None}) == {**LEGACY, "img": 64, "crop": 32, **then}
    before_reg = {"arch": "centernet", "crop": 64, "tta": "hv"}  # sessions 12-13
    assert upgrade_run_record(before_reg) == {**before_reg, **then}
    before_anywhere = {"arch": "centernet", "crop": 64, "tta": "hv", "reg_radius": 1, "vflip": 0.5}  # 14-15
    assert upgrade_run_record(before_anywhere) == {**before_anywhere, "crop_anywhere": 0.0}
    new = {**before_anywhere, "crop_anywhere": 0.3}
    assert upgrade_run_record(new) is new and upgrade_run_record({}) == {}


def test_an_old_run_folder_resumes_bit_exactly_and_predicts_as_before(tmp_path, capsys):
    before = tinyml.get_num_threads()
    tinyml.set_num_threads(1)  # csrc/conv.cpp's weight gradient is bit-reproducible on one thread
    try:
        straight = str(tmp_path / "straight")
        train_detector(DetectRun(out=straight, epochs=2, **OLD), log=lambda *a: None)
        old = str(tmp_path / "old")
        train_detector(DetectRun(out=old, epochs=1, **OLD), log=lambda *a: None)
        _make_old(old)
        assert load_detector(old)[1]["tta"] == ""
        assert main(["detect", "train", "--resume", "--epochs", "2", "--out", old]) == 0
    finally:
        tinyml.set_num_threads(before)
    assert "Detector tiny" in capsys.readouterr().out
    a = load_checkpoint(os.path.join(straight, "checkpoint.safetensors"))
    b = load_checkpoint(os.path.join(old, "checkpoint.safetensors"))
    assert a["extra"] == b["extra"] and b["extra"]["augment"]["crop"] == 32
    for k in a["model"]:
        np.testing.assert_array_equal(a["model"][k].numpy(), b["model"][k].numpy(), err_msg=k)
        np.testing.assert_array_equal(a["ema"]["weights"][k].numpy(), b["ema"]["weights"][k].numpy())
    record = read_run_record(old)  # rewritten with the values the run has, as numbers
    assert (record["arch"], record["crop"], record["ema_decay"], record["tta"]) == ("yolo", 32, 0.9999, "")
    assert record["eval_every"] == 1 and record["heatmap_stride"] == 4
    val = [r for r in _records(old) if "val_AP50" in r]
    assert [(r["step"], r["tta"]) for r in val[-1:]] == [(4, "none")]  # every epoch, no TTA, as before
    # predict without --tta: plain inference, the same boxes as before
    model, info = load_detector(old)
    assert info["tta"] == ""
    folder = os.path.join(old, "data", "val")
    first = sorted(os.listdir(folder))[0]
    image, _ = predict_module.load_image(os.path.join(folder, first), model.in_channels)
    expected = predict_module.predict_image(model, image, 64, 0.001, tta="")
    assert main(["detect", "predict", "--ckpt", old, "--source", os.path.join(folder, first), "--out",
                 str(tmp_path / "p"), "--conf", "0.001", "--no-draw"]) == 0
    with open(tmp_path / "p" / "predictions.json") as f:
        scores = [r["score"] for r in json.load(f)]
    np.testing.assert_allclose(scores, expected[1], atol=1e-5)


def test_resume_of_an_old_run_refuses_the_new_defaults_it_did_not_have(tmp_path, capsys):
    old = str(tmp_path / "old")
    train_detector(DetectRun(out=old, epochs=1, **OLD), log=lambda *a: None)
    _make_old(old)
    with pytest.raises(SystemExit) as e:
        main(["detect", "train", "--resume", "--epochs", "2", "--arch", "centernet", "--out", old])
    assert e.value.code == 2
    assert "--arch centernet (the run has yolo)" in capsys.readouterr().err
