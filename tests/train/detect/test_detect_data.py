"""COCO / YOLO datasets: round trips through write_synthetic_ir, masks as pycocotools, collate, formats."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from tinyml.train.detect.data import CocoDetection, YoloDetection, collate, open_detection_dataset
from tinyml.train.detect.synthetic import SyntheticIR, write_synthetic_ir
from tinyml.train.detect.writers import save_image
from tinyml.train.detect.yolo import read_yolo_names


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    for fmt in ("coco", "yolo"):
        write_synthetic_ir(str(root / fmt), n_train=5, n_val=3, size=64, seed=7, fmt=fmt, max_targets=4)
    return root


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
@pytest.mark.parametrize("split, first, n", [("train", 0, 5), ("val", 5, 3)])
def test_round_trip_gives_the_generated_targets(written, fmt, split, first, n):
    ds = open_detection_dataset(str(written / fmt), split)
    assert isinstance(ds, CocoDetection if fmt == "coco" else YoloDetection)
    reference = SyntheticIR(n, size=64, seed=7, first_index=first, max_targets=4)
    assert len(ds) == n and ds.class_names == ["target"] and ds.in_channels == 1 and ds.num_classes == 1
    assert not (ds.skipped or ds.clipped or ds.dropped)
    for i in range(n):
        image, target = ds[i]
        ref_image, ref = reference[i]
        assert image.dtype == np.float32 and image.shape == (1, 64, 64)
        np.testing.assert_allclose(image, ref_image, atol=0.5 / 255 + 1e-6)     # 8-bit PNG rounding
        np.testing.assert_allclose(target["boxes"], ref["boxes"], atol=1e-3)    # YOLO: 6 decimals
        np.testing.assert_allclose(target["points"], ref["points"], atol=1e-3)
        assert np.array_equal(target["labels"], ref["labels"]) and target["labels"].dtype == np.int64
        assert target["file_name"] == ref["file_name"] and target["orig_size"] == (64, 64)
        if fmt == "coco":
            assert target["image_id"] == ref["image_id"]
            assert np.array_equal(target["mask"], ref["mask"])
        else:
            assert target["image_id"] == i and "mask" not in target


def test_coco_file_reads_in_pycocotools(written):
    coco_api = pytest.importorskip("pycocotools.coco")
    ds = CocoDetection(str(written / "coco"), "train")
    api = coco_api.COCO(ds.annotation_file)
    for i in range(len(ds)):
        _, target = ds[i]
        anns = api.loadAnns(api.getAnnIds(imgIds=[target["image_id"]]))
        union = np.zeros((64, 64), dtype=np.uint8)
        for ann in anns:
            union |= api.annToMask(ann)
        assert np.array_equal(union, target["mask"])
        assert sorted(a["bbox"][0] for a in anns) == sorted(target["boxes"][:, 0].tolist())


def test_sixteen_bit_png_round_trip(tmp_path):
    write_synthetic_ir(str(tmp_path), n_train=2, n_val=0, size=48, seed=1, fmt="coco", bit_depth=16)
    ds = CocoDetection(str(tmp_path), "train")
    ref = SyntheticIR(2, size=48, seed=1)
    for i in range(2):
        np.testing.assert_allclose(ds[i][0], ref[i][0], atol=0.5 / 65535 + 1e-6)


def test_categories_map_to_contiguous_labels_and_polygons_to_masks(tmp_path):
    mask_api = pytest.importorskip("pycocotools.mask")
    save_image(str(tmp_path / "val" / "a.png"), np.zeros((3, 20, 30), dtype=np.float32))
    polygon = [2.0, 3.0, 12.5, 4.0, 9.0, 15.0]
    coco = {"images": [{"id": 42, "file_name": "a.png", "width": 30, "height": 20}],
            "categories": [{"id": 9, "name": "plane"}, {"id": 3, "name": "bird"}],
            "annotations": [{"id": 1, "image_id": 42, "category_id": 9, "bbox": [2, 3, 10.5, 12],
                             "segmentation": [polygon]},
                            {"id": 2, "image_id": 42, "category_id": 3, "bbox": [20, 5, 4, 4]},
                            {"id": 3, "image_id": 42, "category_id": 3, "bbox": [0, 0, 30, 20],
                             "iscrowd": 1}]}
    os.makedirs(tmp_path / "annotations")
    (tmp_path / "annotations" / "instances_val.json").write_text(json.dumps(coco))
    ds = open_detection_dataset(str(tmp_path), "val")
    assert ds.class_names == ["bird", "plane"] and ds.category_ids == [3, 9] and ds.in_channels == 3
    image, target = ds[0]
    assert image.shape == (3, 20, 30) and target["image_id"] == 42
    assert target["labels"].tolist() == [1, 0]                                 # crowd left out
    np.testing.assert_allclose(target["boxes"], [[2, 3, 12.5, 15], [20, 5, 24, 9]])
    np.testing.assert_allclose(target["points"], [[7.25, 9], [22, 7]])
    ref = mask_api.decode(mask_api.merge(mask_api.frPyObjects([polygon], 20, 30)))
    assert np.array_equal(target["mask"], ref) and ref.sum() > 20


def test_yolo_names_polygons_and_background(tmp_path):
    mask_api = pytest.importorskip("pycocotools.mask")
    for name in ("a", "b", "c"):
        path = str(tmp_path / "images" / "train" / f"{name}.png")
        save_image(path, np.zeros((1, 40, 50), dtype=np.float32))
    os.makedirs(tmp_path / "labels" / "train")
    (tmp_path / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.2 0.1\n\n0 0.1 0.1 0.5 0.1 0.3 0.6\n")
    (tmp_path / "labels" / "train" / "b.txt").write_text("")                 # empty: background
    (tmp_path / "data.yaml").write_text("path: x\nnames: ['car', 'person']\n")
    ds = YoloDetection(str(tmp_path), "train")
    assert len(ds) == 3 and ds.class_names == ["car", "person"] and not ds.skipped
    _, a = ds[0]
    np.testing.assert_allclose(a["boxes"], [[20, 18, 30, 22], [5, 4, 25, 24]], atol=1e-4)
    assert a["labels"].tolist() == [1, 0]
    poly = (np.array([0.1, 0.1, 0.5, 0.1, 0.3, 0.6]) * [50, 40, 50, 40, 50, 40]).tolist()
    assert np.array_equal(a["mask"], mask_api.decode(mask_api.merge(mask_api.frPyObjects([poly], 40, 50))))
    for i in (1, 2):
        _, t = ds[i]
        assert t["boxes"].shape == (0, 4) and t["labels"].shape == (0,) and t["mask"].sum() == 0


@pytest.mark.parametrize("text, names", [
    ("names: [a, 'b c']\n", ["a", "b c"]),
    ("nc: 2\nnames:\n  - a\n  - \"b\"\ntrain: x\n", ["a", "b"]),
    ("names:\n  1: b\n  0: a\n", ["a", "b"]),
    ("train: images/train\n", None),
])
def test_read_yolo_names(tmp_path, text, names):
    (tmp_path / "data.yaml").write_text(text)
    assert read_yolo_names(str(tmp_path / "data.yaml")) == names


def test_collate_stacks_and_names_mismatched_shapes():
    ds = SyntheticIR(3, size=32, seed=0, max_size=3)
    images, targets = collate([ds[0], ds[1], ds[2]])
    assert images.shape == (3, 1, 32, 32) and images.dtype == np.float32 and len(targets) == 3
    assert np.array_equal(images[1], ds[1][0]) and targets[2]["image_id"] == 3
    other = SyntheticIR(1, size=(32, 40), seed=0, max_size=3)[0]
    with pytest.raises(ValueError, match=r"000000.png', \(1, 32, 40\)\).*letterbox"):
        collate([ds[0], other])
    with pytest.raises(ValueError, match="no samples"):
        collate([])


def test_write_synthetic_ir_rejects_an_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="fmt must be 'coco' or 'yolo', got 'voc'"):
        write_synthetic_ir(str(tmp_path), 1, 1, size=32, fmt="voc")


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_image_cache_gives_the_same_samples_and_fresh_copies(written, fmt):
    """cache_images: cached reads equal the decoded ones (pixels and targets), each read is a copy the
    caller may write into, and images past the byte budget are decoded on every read."""
    plain, cached = (open_detection_dataset(str(written / fmt), "train") for _ in range(2))
    one = plain[0][0].nbytes
    cached.cache_images(2 * one)  # room for two of the five images
    for _ in range(2):
        for i in range(len(plain)):
            (a, ta), (b, tb) = plain[i], cached[i]
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(ta["boxes"], tb["boxes"])
            np.testing.assert_array_equal(ta["labels"], tb["labels"])
            b[:] = -1.0  # a copy: the next read is unchanged
    assert sorted(cached._cache) == [0, 1] and cached._cache_room == 0
    np.testing.assert_array_equal(cached[-1][0], plain[len(plain) - 1][0])
    with pytest.raises(ValueError, match="max_bytes must be >= 0, got -1"):
        cached.cache_images(-1)


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_masks_off_leaves_them_out_of_the_targets(written, fmt):
    """dataset.masks = False: the same images, boxes, labels and points, and no "mask" entry."""
    with_masks, without = (open_detection_dataset(str(written / fmt), "train") for _ in range(2))
    without.masks = False
    for i in range(len(with_masks)):
        (a, ta), (b, tb) = with_masks[i], without[i]
        assert ("mask" in ta) == with_masks.has_masks and "mask" not in tb
        np.testing.assert_array_equal(a, b)
        assert sorted(ta) == sorted([*tb, "mask"] if "mask" in ta else tb)
        for key in ("boxes", "labels", "points"):
            np.testing.assert_array_equal(ta[key], tb[key])
