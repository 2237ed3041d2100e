"""`tinyml detect train` end to end on a small synthetic set: the run folder (checkpoint, metrics.jsonl with
the loss parts and val AP / Pd / Fa, loss.png, the written data set), bit-exact resume (CenterNet, the
default, and the Detector), the time limit, a YOLO-layout --data, and errors that name the values (a folder
in neither layout, bad flags, resume conflicts, Detector losses given to the default CenterNet)."""
import json
import os

import numpy as np
import pytest
from tinyml.train.checkpoint import load_checkpoint
from tinyml.train.cli import main
from tinyml.train.detect import loop
from tinyml.train.detect.loop import EpochSampler
from tinyml.train.detect.run import DetectRun, train_detector
from tinyml.train.detect.synthetic import SyntheticIR, write_synthetic_ir

SMALL = ["--batch", "8", "--img", "64", "--synthetic-train", "12", "--synthetic-val", "4", "--synthetic-size",
         "64"]


def _spec(out, **kw):
    base = dict(out=str(out), epochs=2, batch=8, img=64, synthetic_train=12, synthetic_val=4,
                synthetic_size=64, progress=False)
    return DetectRun(**{**base, **kw})


def _records(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _errors(capsys, argv, code):
    with pytest.raises(SystemExit) if code == 2 else _nothing():
        rc = main(argv)
        assert rc == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_train_leaves_a_complete_run_folder(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["detect", "train", "--epochs", "1", "--arch", "yolo", *SMALL, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "writing the synthetic infrared set (12 train + 4 val images of 64x64, seed 0)" in printed
    assert "val: AP50" in printed and "tinyml detect predict --ckpt" in printed
    assert "Detector tiny" in printed and "EMA 0.9999" in printed and "(trained on 32 px crops)" in printed
    for name in ("checkpoint.safetensors", "metrics.jsonl", "loss.png", "detect.json",
                 "data/annotations/instances_train.json", "data/annotations/instances_val.json",
                 "data/val/000012.png"):
        assert os.path.exists(os.path.join(out, name)), name
    records = _records(out)
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]  # 12 images in batches of 8: two steps an epoch
    assert all({"cls", "box", "dfl", "lr", "images_per_s"} <= set(r) for r in steps)
    assert all(np.isfinite(r["loss"]) for r in steps)
    val = [r for r in records if "val_AP50" in r]
    assert len(val) == 1 and val[0]["step"] == 2 and val[0]["tta"] == "hv"  # the run's tta (the default)
    assert {"val_AP", "val_AP_small", "val_Pd", "val_Fa", "eval_s"} <= set(val[0])
    state = load_checkpoint(os.path.join(out, "checkpoint.safetensors"))
    extra = state["extra"]
    assert extra["detector"]["box_loss"] == "nwd" and extra["class_names"] == ["target"]
    assert extra["category_ids"] == [1] and extra["img"] == 64
    assert state["sampler"]["epoch"] == 0 and state["sampler"]["position"] == 12
    assert {"model", "optimizer", "scheduler", "rng"} <= set(state)


@pytest.fixture
def one_thread():
    """csrc/conv.cpp's weight gradient sums per-thread partials filled under schedule(dynamic): with
    several threads the summation order, hence the last bit, depends on timing (two identical runs differ
    by ~1e-7). One thread makes the kernels deterministic, which is what this comparison needs."""
    import tinyml

    before = tinyml.get_num_threads()
    tinyml.set_num_threads(1)
    yield
    tinyml.set_num_threads(before)


@pytest.mark.parametrize("arch", ["centernet", "yolo"])
def test_resume_is_bit_exact(tmp_path, monkeypatch, one_thread, arch):
    """Two epochs straight == one epoch, stopped (as by Ctrl-C), then --resume to two: the same weights and
    the same EMA of them, for the default CenterNet and for the Detector."""
    straight = train_detector(_spec(tmp_path / "straight", arch=arch), log=lambda *a: None)
    original = loop.DetectTrainer._log_step

    def stop_after_first_epoch(self, run, *args):
        original(self, run, *args)
        if self.step == self.sampler.steps_per_epoch:
            self.request_stop()

    monkeypatch.setattr(loop.DetectTrainer, "_log_step", stop_after_first_epoch)
    first = train_detector(_spec(tmp_path / "split", arch=arch), log=lambda *a: None)
    assert first["stopped"] == "interrupted" and first["step"] == 2
    monkeypatch.setattr(loop.DetectTrainer, "_log_step", original)
    second = train_detector(_spec(tmp_path / "split", arch=arch, resume=True), log=lambda *a: None)
    assert second["step"] == straight["step"] == 4
    # the checkpoints' trained weights and their EMA (train/detect/ema.py), which the runs return
    a = load_checkpoint(str(tmp_path / "straight" / "checkpoint.safetensors"))
    b = load_checkpoint(str(tmp_path / "split" / "checkpoint.safetensors"))
    assert int(a["ema"]["updates"]) == int(b["ema"]["updates"]) == 4
    for weights_a, weights_b in ((a["model"], b["model"]), (a["ema"]["weights"], b["ema"]["weights"])):
        assert weights_a.keys() == weights_b.keys()
        for k in weights_a:
            np.testing.assert_array_equal(weights_a[k].numpy(), weights_b[k].numpy(), err_msg=k)
    returned = straight["model"].state_dict()
    for k in returned:
        np.testing.assert_array_equal(returned[k].numpy(), a["ema"]["weights"][k].numpy(), err_msg=k)
    # metrics.jsonl of the resumed run describes one run: each step once
    steps = [r["step"] for r in _records(str(tmp_path / "split")) if "loss" in r]
    assert steps == [1, 2, 3, 4]


def test_resume_keeps_the_runs_flags_and_refuses_changes(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["detect", "train", "--epochs", "1", "--arch", "yolo", *SMALL, "--cls-loss", "focal",
                 "--out", out]) == 0
    capsys.readouterr()
    err = _errors(capsys, ["detect", "train", "--resume", "--cls-loss", "atfl", "--out", out], 2)
    assert "--cls-loss atfl (the run has focal)" in err
    assert main(["detect", "train", "--resume", "--epochs", "2", "--out", out]) == 0  # extends the run
    state = load_checkpoint(os.path.join(out, "checkpoint.safetensors"))
    assert int(state["step"]) == 4 and state["extra"]["detector"]["cls_loss"] == "focal"
    err = _errors(capsys, ["detect", "train", "--epochs", "1", *SMALL, "--out", out], 2)
    assert "already holds a run" in err and "--resume" in err


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_time_limit_stops_evaluated_and_checkpointed(tmp_path, clock):
    spec = _spec(tmp_path / "run", epochs=50, time_limit=1e-6, time_clock=clock)
    s = train_detector(spec, log=lambda *a: None)
    assert s["stopped"] == "time_limit" and s["step"] == 1
    records = _records(str(tmp_path / "run"))
    assert records[-1]["step"] == 1 and "val_AP50" in records[-1]
    assert int(load_checkpoint(str(tmp_path / "run" / "checkpoint.safetensors"))["step"]) == 1


def test_trains_on_a_yolo_layout_folder(tmp_path, capsys):
    data = str(tmp_path / "yolo")
    write_synthetic_ir(data, 8, 4, size=64, seed=3, fmt="yolo", num_classes=2)
    out = str(tmp_path / "run")
    assert main(["detect", "train", "--data", data, "--epochs", "1", "--batch", "8", "--img", "64",
                 "--arch", "yolo", "--cls-loss", "varifocal", "--box-loss", "ciou", "--out", out]) == 0
    assert "2 class(es) ['small', 'large']" in capsys.readouterr().out
    extra = load_checkpoint(os.path.join(out, "checkpoint.safetensors"))["extra"]
    assert extra["category_ids"] == [1, 2] and extra["detector"]["num_classes"] == 2
    assert not os.path.exists(os.path.join(out, "data"))


def test_errors_name_the_values(tmp_path, capsys):
    neither = tmp_path / "neither"
    neither.mkdir()
    (neither / "notes.txt").write_text("x")
    err = _errors(capsys, ["detect", "train", "--data", str(neither), "--out", str(tmp_path / "a")], 1)
    assert f"{neither} holds neither a COCO set" in err and "notes.txt" in err
    err = _errors(capsys, ["detect", "train", "--model", "huge", "--out", str(tmp_path / "b")], 2)
    assert "invalid choice: 'huge'" in err
    err = _errors(capsys, ["detect", "train", "--img", "100", "--out", str(tmp_path / "c")], 2)
    assert "--img 100: must be a multiple of the detector's largest stride 16" in err
    err = _errors(capsys, ["detect", "train", "--resume", "--out", str(tmp_path / "d")], 2)
    assert "holds no checkpoint" in err
    write_synthetic_ir(str(tmp_path / "noval"), 4, 0, size=64, fmt="yolo")
    os.rmdir(tmp_path / "noval" / "images" / "val")
    argv = ["detect", "train", "--data", str(tmp_path / "noval"), "--out", str(tmp_path / "e")]
    err = _errors(capsys, argv, 1)
    assert "a val split is needed" in err
    err = _errors(capsys, ["detect"], 2)
    assert "a subcommand is needed: train, predict or eval" in err


def test_epoch_sampler_visits_each_image_once_per_epoch_and_resumes():
    ds = SyntheticIR(5, size=64, seed=1)
    s = EpochSampler(ds, batch_size=2, seed=4)
    assert s.steps_per_epoch == 3
    seen = [t["image_id"] for _ in range(3) for t in s.next_batch()[1].targets]
    assert sorted(seen) == [1, 2, 3, 4, 5]
    state = s.state_dict()
    after = [t["image_id"] for t in s.next_batch()[1].targets]
    s2 = EpochSampler(ds, batch_size=2, seed=4)
    s2.load_state_dict(state)
    assert [t["image_id"] for t in s2.next_batch()[1].targets] == after
    with pytest.raises(ValueError, match="made for .*'batch_size': 2.*this run has .*'batch_size': 3"):
        EpochSampler(ds, batch_size=3, seed=4).load_state_dict(state)


def _augmented(n=5, seed=1):
    from tinyml.train.detect.augment import AugmentedDataset
    return AugmentedDataset(SyntheticIR(n, size=64, seed=seed), 32, train=True, seed=3, hflip=0.5, vflip=0.5,
                            mosaic=0.5, crop=32, fit=64)


def test_prefetching_sampler_gives_the_same_batches_across_epochs_and_restores():
    """prefetch builds batch k + 1 on a thread while k is used: the same pixels and targets as building
    each when asked, across epoch ends (5 images, batch 2: a remainder batch), and after load_state_dict
    (the batch in flight was for another position and is dropped)."""
    plain, ahead = EpochSampler(_augmented(), 2, seed=4), EpochSampler(_augmented(), 2, seed=4, prefetch=True)
    assert ahead.prefetch and not plain.prefetch
    try:
        for _ in range(7):  # 2 epochs and a bit
            (xa, ta), (xb, tb) = plain.next_batch(), ahead.next_batch()
            np.testing.assert_array_equal(xa, xb)
            for a, b in zip(ta.targets, tb.targets):
                np.testing.assert_array_equal(a["boxes"], b["boxes"])
            assert plain.state_dict() == ahead.state_dict()
        state = {**plain.state_dict(), "epoch": 0, "position": 2}
        plain.load_state_dict(state)
        ahead.load_state_dict(state)
        assert ahead._pending is None
        np.testing.assert_array_equal(plain.next_batch()[0], ahead.next_batch()[0])
    finally:
        ahead.close()
    assert ahead._worker is None


def test_prefetching_sampler_raises_the_datasets_error_in_the_caller():
    class Broken:
        class_names = ["target"]

        def __len__(self):
            return 4

        def sample(self, i, epoch):
            if epoch == 1:
                raise ValueError(f"bad image {i}")
            return np.zeros((1, 8, 8), np.float32), {"boxes": np.zeros((0, 4), np.float32),
                                                      "labels": np.zeros(0, np.int64)}

    s = EpochSampler(Broken(), 2, prefetch=True)
    try:
        s.next_batch()
        s.next_batch()  # the last batch of epoch 0; epoch 1's first is being built and fails
        with pytest.raises(ValueError, match="bad image"):
            s.next_batch()
    finally:
        s.close()


def test_the_default_is_centernet_at_stride_1_and_refuses_yolo_losses(tmp_path, capsys):
    """No --arch: CenterNet at heatmap stride 1 on crops of a quarter of --img (16 at img 64), EMA 0.999,
    validation with tta hv; the resolved values in detect.json and the checkpoint."""
    out = str(tmp_path / "run")
    assert main(["detect", "train", "--epochs", "1", *SMALL, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "CenterNet tiny (heatmap stride 1)" in printed and "(trained on 16 px crops)" in printed
    assert "EMA 0.999," in printed and "with tta hv" in printed
    state = load_checkpoint(os.path.join(out, "checkpoint.safetensors"))
    extra = state["extra"]
    assert extra["arch"] == "centernet" and extra["detector"]["stride"] == 1
    assert extra["augment"]["crop"] == 16 and extra["ema"] == {"decay": 0.999, "tau": 500.0}
    assert state["tta"] == "hv"
    with open(os.path.join(out, "detect.json")) as f:
        record = json.load(f)
    assert (record["arch"], record["heatmap_stride"], record["crop"]) == ("centernet", 1, 16)
    assert (record["ema_decay"], record["tta"], record["eval_every"]) == (0.999, "hv", "auto")
    steps = [r for r in _records(out) if "loss" in r]
    assert steps and all({"hm", "off", "wh"} <= set(r) for r in steps)
    preds = str(tmp_path / "pred")
    val = os.path.join(out, "data", "val")
    assert main(["detect", "predict", "--ckpt", out, "--source", val, "--out", preds, "--conf", "0.01",
                 "--no-draw"]) == 0
    assert "(tta hv)" in capsys.readouterr().out
    with open(os.path.join(preds, "predictions.json")) as f:
        assert all(r["category_id"] == 1 for r in json.load(f))
    for flags, shown in ((["--box-loss", "ciou"], "--box-loss ciou / --cls-loss bce"),
                         (["--cls-loss", "focal"], "--box-loss nwd / --cls-loss focal")):
        err = _errors(capsys, ["detect", "train", *flags, "--out", str(tmp_path / "x")], 2)
        assert err.count("\n") == 0 and shown in err
        assert "these flags belong to --arch yolo; --arch centernet (the default) has its own losses" in err
