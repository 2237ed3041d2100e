"""`tinyml detect train --nwd-c / --assign-nwd-c`: the constants reach the saved detector config, define
the run (a resume with another value is refused naming both), bad values are refused; the default
--nwd-c auto is the training boxes' mean sqrt(w h) at the model's scale (COCO and YOLO layouts)."""
import os

import numpy as np
import pytest
from tinyml.train.checkpoint import load_checkpoint
from tinyml.train.cli import main
from tinyml.train.detect.data import open_detection_dataset
from tinyml.train.detect.run import DetectRun, mean_object_size
from tinyml.train.detect.synthetic import write_synthetic_ir
from tinyml.train.runs import UsageError

SMALL = ["--batch", "8", "--img", "64", "--synthetic-train", "8", "--synthetic-val", "4", "--synthetic-size",
         "64"]


def test_constants_reach_the_detector_and_define_the_run(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["detect", "train", "--arch", "yolo", "--epochs", "1", *SMALL, "--nwd-c", "4.7",
                 "--assign-nwd-c", "3", "--out", out]) == 0
    config = load_checkpoint(os.path.join(out, "checkpoint.safetensors"))["extra"]["detector"]
    assert config["nwd_constant"] == 4.7 and config["assign_nwd_constant"] == 3.0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["detect", "train", "--resume", "--epochs", "2", "--nwd-c", "12.8", "--out", out])
    assert e.value.code == 2
    assert "--nwd-c 12.8 (the run has 4.7)" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--nwd-c", "--assign-nwd-c"])
def test_non_positive_constants_are_refused(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as e:
        main(["detect", "train", flag, "0", "--out", str(tmp_path / "r")])
    assert e.value.code == 2
    assert f"argument {flag}: must be a finite number > 0, got '0'" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_auto_is_the_training_boxes_mean_size_at_img(tmp_path, fmt):
    root = str(tmp_path / fmt)
    write_synthetic_ir(root, 6, 2, size=64, seed=2, fmt=fmt)
    train = open_detection_dataset(root, "train")
    boxes = np.concatenate([train[i][1]["boxes"] for i in range(len(train))])
    sizes = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    assert mean_object_size(train, 64) == pytest.approx(sizes.mean(), rel=1e-5)
    assert mean_object_size(train, 128) == pytest.approx(2 * sizes.mean(), rel=1e-5)  # letterboxed x2


def test_auto_is_the_default_and_reaches_the_detector(tmp_path):
    out = str(tmp_path / "run")
    assert main(["detect", "train", "--arch", "yolo", "--epochs", "1", *SMALL, "--out", out]) == 0
    config = load_checkpoint(os.path.join(out, "checkpoint.safetensors"))["extra"]["detector"]
    train = open_detection_dataset(os.path.join(out, "data"), "train")
    assert config["nwd_constant"] == pytest.approx(mean_object_size(train, 64))
    assert config["assign_nwd_constant"] == 12.8 and config["box_shift"] == 0.25
    with pytest.raises(UsageError, match="--nwd-c big: NWD's constant C must be a positive number"):
        DetectRun(out=str(tmp_path / "r"), nwd_c="big").check()
