"""bench/detect.py's run naming and settings: NAME@TAG runs NAME under its own name, --set KEY=VALUE applies
to every tinyml run and --set RUN:KEY=VALUE to that run alone (over the former), values parsed as JSON."""
import argparse
import os
import sys

import pytest
from helpers import REPO_ROOT, load_script


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, os.path.join(REPO_ROOT, "bench"))  # bench/detect.py imports detect_scoring beside it
    try:
        yield load_script("bench/detect.py", "bench_detect")
    finally:
        sys.path.remove(os.path.join(REPO_ROOT, "bench"))


def test_base_run(bench):
    assert bench.base_run("nwd+bce") == "nwd+bce"
    assert bench.base_run("centernet@s1") == "centernet"
    assert bench.base_run("nwd+bce@a@b") == "nwd+bce"


def test_override_parses_plain_and_per_run_settings(bench):
    assert bench._override("crop=96") == ("crop", 96)
    assert bench._override("strides=[2,4,8,16]") == ("strides", [2, 4, 8, 16])
    assert bench._override("arch=centernet") == ("arch", "centernet")
    assert bench._override("centernet@s1:heatmap_stride=1") == (("centernet@s1", "heatmap_stride"), 1)
    with pytest.raises(argparse.ArgumentTypeError, match="'colour=3': expected KEY=VALUE with KEY one of"):
        bench._override("colour=3")
    with pytest.raises(argparse.ArgumentTypeError, match="'out=x': expected KEY=VALUE"):
        bench._override("nwd+bce:out=x")  # per-invocation settings stay the bench's


def test_run_settings_per_run_over_global_over_the_run(bench):
    cfg = {"batch": 16, "seed": 0, "overrides": {"crop": 96, "lr": 0.003},
           "run_overrides": {"centernet@s1": {"crop": 64, "heatmap_stride": 1}}}
    plain = bench.run_settings({**cfg, "name": "nwd+focal"})
    assert (plain["box_loss"], plain["cls_loss"], plain["arch"]) == ("nwd", "focal", "yolo")
    assert (plain["crop"], plain["lr"]) == (96, 0.003) and "heatmap_stride" not in plain
    tagged = bench.run_settings({**cfg, "name": "centernet@s1"})
    got = (tagged["arch"], tagged["crop"], tagged["heatmap_stride"], tagged["lr"])
    assert got == ("centernet", 64, 1, 0.003)


def test_the_default_run_pins_nothing_and_the_others_keep_their_measured_settings(bench):
    """default = `tinyml detect train`'s defaults; the loss rows resolve to the Detector's crop 128 / EMA
    0.9999 and centernet to its historic stride-4 row, whatever the DetectRun defaults are."""
    from tinyml.train.detect.run import DetectRun

    cfg = {"batch": 16, "seed": 0}
    default = bench.run_settings({**cfg, "name": "default"})
    assert not {"arch", "box_loss", "cls_loss", "heatmap_stride", "crop", "ema_decay"} & set(default)
    spec = DetectRun(out="/nonexistent", **default).resolved()
    got = (spec.arch, spec.heatmap_stride, spec.crop, spec.ema_decay, spec.tta)
    assert got == ("centernet", 1, 64, 0.999, "hv")
    for name, losses in (("nwd+bce", ("nwd", "bce")), ("ciou+bce", ("ciou", "bce")),
                         ("nwd+focal", ("nwd", "focal")), ("nwd+atfl", ("nwd", "atfl")),
                         ("ciou+focal", ("ciou", "focal"))):
        spec = DetectRun(out="/nonexistent", **bench.run_settings({**cfg, "name": name})).resolved()
        assert (spec.arch, spec.box_loss, spec.cls_loss, spec.crop, spec.ema_decay) == ("yolo", *losses, 128,
                                                                                         0.9999)
    spec = DetectRun(out="/nonexistent", **bench.run_settings({**cfg, "name": "centernet"})).resolved()
    assert (spec.arch, spec.heatmap_stride, spec.crop, spec.ema_decay) == ("centernet", 4, 128, 0.9999)
    assert bench.ALL[0] == "default" and {"yolov8n", "sahi"} <= set(bench.ALL)


def test_sahi_model_choice(bench, tmp_path):
    workers = sys.modules["detect_workers"]
    assert workers.sahi_model({"sahi_model": "/some/run", "out": str(tmp_path)}) == "/some/run"
    with pytest.raises(FileNotFoundError, match="no trained run in .*--sahi-model RUN_FOLDER"):
        workers.sahi_model({"sahi_model": None, "out": str(tmp_path)})
    for name in ("nwd+bce", "default"):  # an older --out has nwd+bce only; the default run comes first
        os.makedirs(tmp_path / name)
        (tmp_path / name / "checkpoint.safetensors").write_text("x")
        assert workers.sahi_model({"out": str(tmp_path)}) == str(tmp_path / name)
