"""The issue's error paths: each names the file (and line or annotation), raises or is skipped and counted."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from tinyml.train.detect.data import CocoDetection, YoloDetection, load_image, open_detection_dataset
from tinyml.train.detect.writers import save_image


def _coco(root, annotations, images=(("a.png", 1), ("b.png", 2)), categories=((1, "target"),), size=(16, 20)):
    for name, _ in images:
        if not os.path.exists(root / "train" / name):
            save_image(str(root / "train" / name), np.full((1, *size), 0.5, dtype=np.float32))
    coco = {"images": [{"id": i, "file_name": n, "height": size[0], "width": size[1]} for n, i in images],
            "categories": [{"id": c, "name": n} for c, n in categories], "annotations": annotations}
    os.makedirs(root / "annotations", exist_ok=True)
    (root / "annotations" / "instances_train.json").write_text(json.dumps(coco))
    return str(root)


def _ann(i, image_id, bbox, category_id=1):
    return {"id": i, "image_id": image_id, "category_id": category_id, "bbox": bbox}


def test_coco_missing_image_raises_or_is_skipped(tmp_path):
    root = _coco(tmp_path, [_ann(1, 1, [1, 1, 3, 3]), _ann(2, 2, [2, 2, 3, 3])])
    os.remove(tmp_path / "train" / "b.png")
    with pytest.raises(FileNotFoundError, match=r"train/b.png \(image id 2 of .*instances_train.json\)"):
        CocoDetection(root, "train")
    with pytest.warns(UserWarning, match="skipped 1 of 2 images"):
        ds = CocoDetection(root, "train", on_error="skip")
    assert len(ds) == 1 and ds[0][1]["image_id"] == 1
    assert len(ds.skipped) == 1 and ds.skipped[0][0].endswith("b.png")


def test_coco_unknown_category_and_malformed_annotations(tmp_path):
    root = _coco(tmp_path, [_ann(1, 1, [1, 1, 3, 3], category_id=5), _ann(2, 2, [2, 2, 3, 3])])
    with pytest.raises(ValueError, match=r"annotation id 1 \(image .*a.png\) has category_id 5, not one of "
                                         r"the categories \[1\]"):
        CocoDetection(root, "train")
    with pytest.warns(UserWarning, match="skipped 1 of 2"):
        ds = CocoDetection(root, "train", on_error="skip")
    assert [ds[i][1]["image_id"] for i in range(len(ds))] == [2]
    for bad, fragment in (([1, 2, 3], r"bbox must be \[x, y, w, h\], got \[1, 2, 3\]"),
                          ([1, "x", 3, 3], "bbox must be a number, got 'x'"),
                          ([1, 1, float("nan"), 3], "non-finite")):
        _coco(tmp_path, [_ann(7, 1, bad)])
        with pytest.raises(ValueError, match=fragment):
            CocoDetection(root, "train")
    _coco(tmp_path, [_ann(8, 99, [1, 1, 2, 2])])
    with pytest.raises(ValueError, match="annotation id 8 refers to image_id 99"):
        CocoDetection(root, "train")


def test_boxes_partly_outside_are_clipped_wholly_outside_are_errors_empty_are_dropped(tmp_path):
    anns = [_ann(1, 1, [-2, 3, 6, 4]), _ann(2, 1, [15, 10, 10, 10]), _ann(3, 2, [4, 4, 0, 3])]
    root = _coco(tmp_path, anns)
    with pytest.warns(UserWarning) as record:
        ds = CocoDetection(root, "train")
    messages = " | ".join(str(w.message) for w in record)
    assert "clipped 2 boxes" in messages and "dropped 1 boxes of zero width" in messages
    np.testing.assert_allclose(ds[0][1]["boxes"], [[0, 3, 4, 7], [15, 10, 20, 16]])
    assert ds[1][1]["boxes"].shape == (0, 4)
    assert [w for _, w in ds.clipped] == ["annotation id 1", "annotation id 2"]
    _coco(tmp_path, [_ann(1, 1, [25, 3, 4, 4])])
    with pytest.raises(ValueError, match=r"annotation id 1: box .* lies wholly outside the image \(width 20"
                                         r", height 16\)"):
        CocoDetection(root, "train")


def test_coco_image_size_differs_from_the_json(tmp_path):
    root = _coco(tmp_path, [])
    save_image(str(tmp_path / "train" / "a.png"), np.zeros((1, 10, 10), dtype=np.float32))
    with pytest.raises(ValueError, match=r"a.png is 10x10 \(width x height\) but .*instances_train.json says "
                                         r"20x16"):
        CocoDetection(root, "train")
    with pytest.warns(UserWarning, match="skipped 1 of 2"):
        assert len(CocoDetection(root, "train", on_error="skip")) == 1


def test_undecodable_images_are_found_while_building(tmp_path):
    root = _yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"})
    (tmp_path / "images" / "train" / "b.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="b.png cannot be decoded by Pillow"):
        YoloDetection(root, "train")
    with pytest.warns(UserWarning, match="skipped 1 of 2"):
        ds = YoloDetection(root, "train", on_error="skip")
    assert [ds[i][1]["file_name"] for i in range(len(ds))] == ["a.png"]


@pytest.mark.parametrize("content, fragment", [
    ("{", "is not valid JSON"), ('{"images": []}', "'images' and 'categories' lists"),
    ('{"images": [], "categories": [{"name": "x"}]}', "integer 'id'"),
    ('{"images": [{"id": 1}], "categories": []}', "'id' and 'file_name'"),
])
def test_coco_malformed_json(tmp_path, content, fragment):
    os.makedirs(tmp_path / "annotations")
    (tmp_path / "annotations" / "instances_train.json").write_text(content)
    with pytest.raises(ValueError, match=fragment):
        CocoDetection(str(tmp_path), "train")


def _yolo(root, labels, images=("a", "b"), names=None):
    for stem in images:
        save_image(str(root / "images" / "train" / f"{stem}.png"), np.zeros((1, 10, 10), dtype=np.float32))
    os.makedirs(root / "labels" / "train", exist_ok=True)
    for stem, text in labels.items():
        (root / "labels" / "train" / f"{stem}.txt").write_text(text)
    if names:
        (root / "data.yaml").write_text("names: [" + ", ".join(names) + "]\n")
    return str(root)


@pytest.mark.parametrize("line, fragment", [
    ("0 0.5 0.5 0.2", "b.txt:2: expected 'class cx cy w h' or .* got 4 fields: '0 0.5 0.5 0.2'"),
    ("0 0.5 0.5 0.2 0.2 0.1", "b.txt:2: expected .* got 6 fields"),
    ("0 0.5 half 0.2 0.2", "b.txt:2: not all fields are numbers"),
    ("0 0.5 nan 0.2 0.2", "b.txt:2: a field is not finite"),
    ("2 0.5 0.5 0.2 0.2", r"b.txt:2: unknown class id 2 \(the dataset's class ids are 0..1\)"),
    ("-1 0.5 0.5 0.2 0.2", "b.txt:2: unknown class id -1"),
    ("0.5 0.5 0.5 0.2 0.2", "b.txt:2: unknown class id 0.5"),
    ("0 1.5 1.5 0.2 0.2", r"b.txt: line 2 \(normalised coordinates\): box .* lies wholly outside"),
])
def test_yolo_bad_lines_name_file_and_line(tmp_path, line, fragment):
    labels = {"a": "0 0.5 0.5 0.2 0.2\n", "b": "1 0.5 0.5 0.2 0.2\n" + line + "\n"}
    root = _yolo(tmp_path, labels, names=["p", "q"])
    with pytest.raises(ValueError, match=fragment):
        YoloDetection(root, "train")
    with pytest.warns(UserWarning, match=r"skipped 1 of 2 images .*b.txt"):
        ds = YoloDetection(root, "train", on_error="skip")
    assert len(ds) == 1 and ds[0][1]["file_name"] == "a.png" and ds.skipped[0][0].endswith("b.txt")


def test_yolo_label_without_image_and_without_labels_folder(tmp_path):
    root = _yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n", "ghost": "0 0.5 0.5 0.1 0.1\n"})
    with pytest.raises(FileNotFoundError, match=r"label file .*ghost.txt has no image ghost.\* in"):
        YoloDetection(root, "train")
    with pytest.warns(UserWarning, match="skipped 1 of 3"):
        ds = YoloDetection(root, "train", on_error="skip")
    assert len(ds) == 2 and ds.class_names == ["0"]
    np.testing.assert_allclose(ds[0][1]["boxes"], [[4, 4, 6, 6]], atol=1e-5)
    other = tmp_path / "nolabels"
    save_image(str(other / "images" / "train" / "x.png"), np.zeros((1, 8, 8), dtype=np.float32))
    with pytest.warns(UserWarning, match="all 1 images .* are background"):
        ds = YoloDetection(str(other), "train")
    assert ds[0][1]["boxes"].shape == (0, 4) and ds.class_names == []


def test_yolo_box_over_the_border_is_clipped(tmp_path):
    root = _yolo(tmp_path, {"a": "0 0.95 0.5 0.2 0.2\n"})
    with pytest.warns(UserWarning, match=r"clipped 1 boxes .*a.txt: line 1"):
        ds = YoloDetection(root, "train")
    np.testing.assert_allclose(ds[0][1]["boxes"], [[8.5, 4, 10, 6]], atol=1e-5)


def test_mixed_channels_are_converted_and_reported(tmp_path):
    root = _yolo(tmp_path, {}, images=("a",))
    rgb = np.stack([np.full((10, 10), v, dtype=np.float32) for v in (1.0, 0.5, 0.0)])
    save_image(str(tmp_path / "images" / "train" / "b.png"), rgb)
    ds = YoloDetection(root, "train")
    assert ds.in_channels == 1
    with pytest.warns(UserWarning, match=r"b.png has a different channel count than the dataset's 1: conv"):
        image, _ = ds[1]
    assert image.shape == (1, 10, 10) and ds.converted == [str(tmp_path / "images" / "train" / "b.png")]
    np.testing.assert_allclose(image, 0.299 + 0.587 * 128 / 255, atol=1.5 / 255)   # Pillow's luma
    color = YoloDetection(root, "train", channels=3)
    with pytest.warns(UserWarning, match="a.png"):
        gray_as_rgb = color[0][0]
    assert gray_as_rgb.shape == (3, 10, 10) and np.array_equal(gray_as_rgb[0], gray_as_rgb[2])


def test_undecodable_image_and_missing_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png cannot be decoded by Pillow"):
        load_image(str(tmp_path / "broken.png"))
    with pytest.raises(FileNotFoundError, match="nothing.png does not exist"):
        load_image(str(tmp_path / "nothing.png"))


def test_a_folder_in_neither_format(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"neither a COCO set \(looked for .*instances_val.json.* nor a YOLO "
                                         r"set \(looked for .*images/val/.*it holds \['readme.txt'\]"):
        open_detection_dataset(str(tmp_path), "val")
    with pytest.raises(FileNotFoundError, match="dataset folder .*missing does not exist"):
        open_detection_dataset(str(tmp_path / "missing"), "val")
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip', got 'ignore'"):
        YoloDetection(str(tmp_path), "train", on_error="ignore")
