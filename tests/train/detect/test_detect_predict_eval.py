"""`tinyml detect predict` / `tinyml detect eval` and train/detect/evaluate.py: COCO results (image ids from
the annotation file, else the file name; bbox [x, y, w, h] in the image's pixels; the dataset's category
ids), drawn PNGs, SAHI slicing, the AP table; evaluate_detector against an oracle (perfect boxes score
AP 1, Pd 1, Fa 0, through a letterbox of another size) and an empty detector (AP 0, Pd 0)."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from tinyml.train.cli import main
from tinyml.train.detect import predict as predict_module
from tinyml.train.detect.evaluate import boxes_to_mask, evaluate_detector, format_metrics
from tinyml.train.detect.run import DetectRun, load_detector, train_detector
from tinyml.train.detect.synthetic import SyntheticIR

# an untrained detector scores every anchor near its class prior (about 2e-4): a lower threshold makes
# it report boxes all over the image, which is what the format checks below need
ANY = "1e-6"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A Detector run without TTA: predict / eval default to plain inference here (the run's tta, and its
    override, are test_detect_defaults.py's)."""
    out = str(tmp_path_factory.mktemp("detect") / "run")
    train_detector(DetectRun(out=out, epochs=1, batch=8, img=64, synthetic_train=8, synthetic_val=3,
                             synthetic_size=64, progress=False, arch="yolo", tta=""), log=lambda *a: None)
    return out


def _results(folder):
    with open(os.path.join(folder, "predictions.json")) as f:
        return json.load(f)


def test_predict_writes_coco_results_and_drawings(run_folder, tmp_path, capsys):
    out = str(tmp_path / "pred")
    val = os.path.join(run_folder, "data", "val")
    assert main(["detect", "predict", "--ckpt", run_folder, "--source", val, "--out", out, "--conf", ANY,
                 "--max-det", "20"]) == 0
    results = _results(out)
    with open(os.path.join(run_folder, "data", "annotations", "instances_val.json")) as f:
        ids = {im["id"] for im in json.load(f)["images"]}
    assert {r["image_id"] for r in results} == ids  # ids from the annotation file: 9, 10, 11
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score"} and r["category_id"] == 1
        x, y, w, h = r["bbox"]
        assert 0 <= x and 0 <= y and w >= 0 and h >= 0 and x + w <= 64 + 1e-3 and y + h <= 64 + 1e-3
        assert 0 < r["score"] <= 1
    assert len(results) == 20 * 3
    drawn = sorted(f for f in os.listdir(out) if f.endswith(".png"))
    assert drawn == sorted(os.listdir(val))
    assert np.asarray(Image.open(os.path.join(out, drawn[0]))).shape == (64, 64, 3)
    assert "60 detections" in capsys.readouterr().out


def test_predict_and_eval_with_test_time_augmentation(run_folder, tmp_path, capsys):
    val = os.path.join(run_folder, "data", "val")
    out = str(tmp_path / "tta")
    assert main(["detect", "predict", "--ckpt", run_folder, "--source", val, "--out", out, "--conf", ANY,
                 "--max-det", "5", "--tta", "hv", "--no-draw"]) == 0
    model, info = load_detector(run_folder)
    image, _ = predict_module.load_image(os.path.join(val, sorted(os.listdir(val))[0]), model.in_channels)
    boxes, scores, _ = predict_module.predict_image(model, image, 64, float(ANY), max_det=5, tta="hv")
    first = sorted(os.listdir(val))[0]
    with open(os.path.join(run_folder, "data", "annotations", "instances_val.json")) as f:
        image_id = next(im["id"] for im in json.load(f)["images"] if im["file_name"].endswith(first))
    mine = [r for r in _results(out) if r["image_id"] == image_id]
    np.testing.assert_allclose([r["score"] for r in mine], scores, atol=1e-5)  # the json keeps 5 decimals
    assert main(["detect", "eval", "--ckpt", run_folder, "--data", os.path.join(run_folder, "data"),
                 "--tta", "hvt"]) == 0
    assert "Pd (targets found, score >= 0.25)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["detect", "eval", "--ckpt", run_folder, "--data", os.path.join(run_folder, "data"),
              "--tta", "hx"])
    assert e.value.code == 2
    assert "--tta: tta must be a string of distinct letters" in capsys.readouterr().err


def test_predict_unknown_image_gets_its_file_name(run_folder, tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(os.path.join(run_folder, "data", "val", "000009.png"), loose / "scene.png")
    out = str(tmp_path / "pred")
    assert main(["detect", "predict", "--ckpt", run_folder, "--source", str(loose / "scene.png"), "--out",
                 out, "--conf", ANY, "--no-draw"]) == 0
    results = _results(out)
    assert results and {r["image_id"] for r in results} == {"scene.png"}
    assert os.listdir(out) == ["predictions.json"]
    # an annotation file given by hand names the image by its file name
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [{"id": 77, "file_name": "scene.png"}], "categories": []}))
    assert main(["detect", "predict", "--ckpt", run_folder, "--source", str(loose), "--out", out, "--conf",
                 ANY, "--no-draw", "--annotations", str(ann)]) == 0
    assert {r["image_id"] for r in _results(out)} == {77}


def test_predict_sliced_runs_sahi_in_batches(run_folder, tmp_path, monkeypatch):
    """A 128 px image, 64 px slices at overlap 0.25: 9 slices in batches of 4 (3 calls), then the full
    image."""
    image, _ = SyntheticIR(1, size=128, seed=5)[0]
    Image.fromarray((image[0] * 255).astype(np.uint8)).save(tmp_path / "big.png")
    calls = []
    original = predict_module.predict_images

    def counting(model, images, *args, **kw):
        calls.append([im.shape for im in images])
        return original(model, images, *args, **kw)

    monkeypatch.setattr(predict_module, "predict_images", counting)
    out = str(tmp_path / "pred")
    assert main(["detect", "predict", "--ckpt", run_folder, "--source", str(tmp_path / "big.png"), "--out",
                 out, "--conf", ANY, "--slice", "64", "--overlap", "0.25", "--batch", "4", "--no-draw"]) == 0
    assert [len(c) for c in calls] == [4, 4, 1, 1]
    assert calls[0][0] == (1, 64, 64) and calls[-1] == [(1, 128, 128)]
    boxes = np.array([r["bbox"] for r in _results(out)])
    assert len(boxes) and (boxes[:, 0] + boxes[:, 2]).max() > 64  # slice offsets were added back
    assert ((boxes[:, 0] + boxes[:, 2]) <= 128 + 1e-3).all()
    assert ((boxes[:, 1] + boxes[:, 3]) <= 128 + 1e-3).all()


def test_predict_errors(run_folder, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["detect", "predict", "--ckpt", run_folder, "--source", str(empty), "--out",
                 str(tmp_path / "p")]) == 1
    assert f"--source {empty}: the folder holds no images" in capsys.readouterr().err
    assert main(["detect", "predict", "--ckpt", str(empty), "--source", str(empty), "--out",
                 str(tmp_path / "p")]) == 1
    assert "no checkpoint.safetensors there" in capsys.readouterr().err


def test_eval_prints_the_coco_table_and_pd_fa(run_folder, tmp_path, capsys):
    saved = str(tmp_path / "m.json")
    assert main(["detect", "eval", "--ckpt", run_folder, "--data", os.path.join(run_folder, "data"),
                 "--save-json", saved]) == 0
    out = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] =" in out
    assert "Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] =" in out
    assert "Pd (targets found, score >= 0.25)" in out and "Fa (false-alarm pixels / pixels)" in out
    with open(saved) as f:
        m = json.load(f)
    assert m["images"] == 3 and {"AP50", "AP_small", "Pd", "Fa"} <= set(m)
    assert main(["detect", "eval", "--ckpt", run_folder, "--data", os.path.join(run_folder, "data"),
                 "--split", "test"]) == 1
    assert "holds neither a COCO set" in capsys.readouterr().err


class _Oracle:
    """A stand-in detector returning the true boxes of the images it is shown (in their order), scaled into
    the letterboxed frame; `empty` returns nothing."""

    def __init__(self, targets, scale, empty=False):
        self.targets, self.scale, self.empty, self.k = targets, scale, empty, 0

    def predict(self, batch, conf, iou, max_det):
        out = []
        for _ in batch:
            t = self.targets[self.k]
            self.k += 1
            n = 0 if self.empty else len(t["boxes"])
            out.append((t["boxes"][:n] * self.scale, np.linspace(0.9, 0.5, n).astype(np.float32),
                        t["labels"][:n]))
        return out


def test_evaluate_detector_scores_perfect_and_empty_predictions():
    ds = SyntheticIR(4, size=64, seed=2, empty_fraction=0.0)
    targets = [ds[i][1] for i in range(len(ds))]
    m = evaluate_detector(_Oracle(targets, 2.0), ds, img=128, batch=3)  # 64 px images letterboxed to 128
    assert m["AP50"] == pytest.approx(1.0) and m["AP"] == pytest.approx(1.0)
    assert m["Pd"] == 1.0 and m["Fa"] == 0.0 and m["targets"] == sum(len(t["boxes"]) for t in targets)
    m = evaluate_detector(_Oracle(targets, 2.0, empty=True), ds, img=128)
    assert m["AP50"] == 0.0 and m["Pd"] == 0.0
    assert "maxDets=100 ] = 0.000" in format_metrics(m)


def test_boxes_to_mask_marks_at_least_a_pixel_per_box():
    mask = boxes_to_mask([[1.2, 2.0, 1.4, 2.5], [5, 5, 8, 7]], 10, 10)
    assert mask[2, 1] == 1 and mask[5:7, 5:8].all() and mask.sum() == 1 + 6


def test_load_detector_refuses_a_checkpoint_of_another_kind(tmp_path):
    from tinyml.train.checkpoint import save_checkpoint

    import tinyml

    save_checkpoint(str(tmp_path / "checkpoint.safetensors"), {"step": 1, "model": {"w": tinyml.zeros(2)},
                                                                "extra": {"config": {}}})
    with pytest.raises(Exception, match="not of a detector"):
        load_detector(str(tmp_path))
