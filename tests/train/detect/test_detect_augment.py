"""Augmentation: resizing equal to torch's, and every transform keeps boxes on the pixels of their objects."""
from __future__ import annotations

import numpy as np
import pytest
from tinyml.train.detect.augment import (
    AugmentedDataset,
    DetectionAugment,
    mosaic,
    random_crop,
    scale_jitter,
)
from tinyml.train.detect.synthetic import SyntheticIR
from tinyml.train.detect.transforms import (
    filter_boxes,
    hflip,
    letterbox,
    place,
    resize_image,
    resize_mask,
    unletterbox_boxes,
    vflip,
)

torch = pytest.importorskip("torch")


def _drawn(rng, h, w, n=4, channels=1):
    """An image of 0s with each object's box drawn as 1s; mask = the same pixels."""
    image = np.zeros((channels, h, w), dtype=np.float32)
    boxes = []
    for _ in range(n):
        bw, bh = rng.integers(4, 10, 2)
        x1, y1 = rng.integers(0, w - bw), rng.integers(0, h - bh)
        boxes.append([x1, y1, x1 + bw, y1 + bh])
        image[:, y1:y1 + bh, x1:x1 + bw] = 1.0
    boxes = np.asarray(boxes, dtype=np.float32)
    target = {"boxes": boxes, "labels": np.arange(n, dtype=np.int64),
              "points": (boxes[:, :2] + boxes[:, 2:]) / 2,
              "mask": (image[0] > 0).astype(np.uint8), "image_id": 1}
    return image, target


def _assert_boxes_cover_their_pixels(image, target, tol=1e-4):
    """Bright pixels (> 0.5) have their centres inside some box (grown by tol px); each box holds a bright
    pixel; the mask lies inside the boxes; points lie in their boxes."""
    boxes = target["boxes"]
    ys, xs = np.nonzero(image[0] > 0.5)
    cx, cy = xs + 0.5, ys + 0.5
    inside = ((cx[:, None] >= boxes[None, :, 0] - tol) & (cx[:, None] <= boxes[None, :, 2] + tol)
              & (cy[:, None] >= boxes[None, :, 1] - tol) & (cy[:, None] <= boxes[None, :, 3] + tol))
    assert inside.any(1).all(), "a bright pixel lies outside every box"
    for x1, y1, x2, y2 in boxes:
        if x2 - x1 >= 1 and y2 - y1 >= 1:
            c0, c1 = int(np.ceil(x1 - 0.5)), int(np.floor(x2 - 0.5))
            r0, r1 = int(np.ceil(y1 - 0.5)), int(np.floor(y2 - 0.5))
            assert image[0, r0:r1 + 1, c0:c1 + 1].max() > 0.5, f"box {[x1, y1, x2, y2]} holds no bright pixel"
    if "mask" in target:
        my, mx = np.nonzero(target["mask"])
        assert np.all([((boxes[:, 0] - tol <= x + 0.5) & (x + 0.5 <= boxes[:, 2] + tol)
                        & (boxes[:, 1] - tol <= y + 0.5) & (y + 0.5 <= boxes[:, 3] + tol)).any()
                       for x, y in zip(mx, my)])
    p = target["points"]
    assert np.all((boxes[:, 0] <= p[:, 0]) & (p[:, 0] <= boxes[:, 2]) & (boxes[:, 1] <= p[:, 1])
                  & (p[:, 1] <= boxes[:, 3]))
    assert len(target["labels"]) == len(boxes) == len(p)


@pytest.mark.parametrize("h, w, oh, ow", [(13, 17, 29, 8), (40, 31, 20, 62), (5, 5, 5, 5), (9, 1, 3, 4)])
def test_resize_equals_torch(h, w, oh, ow):
    x = np.random.default_rng(0).random((2, h, w), dtype=np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x)[None], size=(oh, ow), mode="bilinear",
                                          align_corners=False, antialias=False)[0].numpy()
    np.testing.assert_allclose(resize_image(x, oh, ow), ref, rtol=1e-5, atol=1e-6)
    m = (x[0] > 0.5).astype(np.uint8)
    ref_m = torch.nn.functional.interpolate(torch.from_numpy(m)[None, None].float(), size=(oh, ow),
                                            mode="nearest-exact")[0, 0].numpy()
    assert np.array_equal(resize_mask(m, oh, ow), ref_m.astype(np.uint8))


@pytest.mark.parametrize("h, w, oh, ow", [(13, 17, 29, 8), (40, 31, 20, 62), (5, 5, 5, 5), (64, 48, 64, 48)])
def test_resizing_a_window_equals_the_window_of_the_resize(h, w, oh, ow):
    """place() resizes only what lands on its canvas: the window's pixels are the full resize's, exactly."""
    rng = np.random.default_rng(h * w)
    x = rng.random((2, h, w), dtype=np.float32)
    m = (x[0] > 0.5).astype(np.uint8)
    full, full_m = resize_image(x, oh, ow), resize_mask(m, oh, ow)
    for _ in range(6):
        r0, c0 = rng.integers(0, oh), rng.integers(0, ow)
        rows, cols = slice(r0, rng.integers(r0, oh + 1)), slice(c0, rng.integers(c0, ow + 1))
        assert np.array_equal(resize_image(x, oh, ow, rows, cols), full[:, rows, cols])
        assert np.array_equal(resize_mask(m, oh, ow, rows, cols), full_m[rows, cols])


@pytest.mark.parametrize("seed", range(6))
def test_place_equals_resizing_everything_then_pasting(seed):
    """The reference place(): resize the whole image and mask, then paste the overlap."""
    rng = np.random.default_rng(seed)
    image, target = _drawn(rng, 48, 64, channels=2)
    s = rng.choice([1.0, rng.uniform(0.3, 2.5)])
    dx, dy = (int(v) for v in rng.integers(-70, 70, 2))
    out_h, out_w = (int(v) for v in rng.integers(16, 90, 2))
    out, t = place(image, target, s, s, dx, dy, out_h, out_w, pad_value=0.25)
    new_h, new_w = max(1, int(round(48 * s))), max(1, int(round(64 * s)))
    ref = np.full((2, out_h, out_w), 0.25, np.float32)
    ref_m = np.zeros((out_h, out_w), np.uint8)
    big, big_m = resize_image(image, new_h, new_w), resize_mask(target["mask"], new_h, new_w)
    for y in range(max(dy, 0), min(dy + new_h, out_h)):
        for x in range(max(dx, 0), min(dx + new_w, out_w)):
            ref[:, y, x], ref_m[y, x] = big[:, y - dy, x - dx], big_m[y - dy, x - dx]
    assert np.array_equal(out, ref) and np.array_equal(t["mask"], ref_m)
    out[:] = -1.0  # the result never shares memory with the input
    assert image.min() >= 0.0


@pytest.mark.parametrize("seed", range(4))
def test_every_transform_keeps_boxes_on_their_objects(seed):
    rng = np.random.default_rng(seed)
    image, target = _drawn(rng, 48, 64)
    _assert_boxes_cover_their_pixels(image, target)
    results = [hflip(image, target), vflip(image, target), letterbox(image, target, 80),
               letterbox(image, target, 40), scale_jitter(image, target, rng, (0.5, 1.6), min_visible=0.0),
               random_crop(image, target, rng, 32, min_visible=0.0),
               random_crop(image, target, rng, (70, 30), min_visible=0.0),
               mosaic([_drawn(rng, 48, 64) for _ in range(4)], rng, 64, min_visible=0.0)]
    for out, t in results:                          # one resampling: edges stay exact
        assert out.dtype == np.float32 and t["mask"].shape == out.shape[1:]
        _assert_boxes_cover_their_pixels(out, t)
    augment = DetectionAugment(56, hflip=0.5, vflip=0.5, scale=(0.6, 1.4), crop=40, mosaic=1.0,
                               min_visible=0.0)
    out, t = augment((image, target), rng, lambda k: [_drawn(rng, 48, 64) for _ in range(k)])
    assert out.shape == (1, 56, 56)
    _assert_boxes_cover_their_pixels(out, t, tol=1.0)   # two resamplings blur an edge by up to a pixel


def test_letterbox_matches_ultralytics_and_inverts():
    image, target = _drawn(np.random.default_rng(1), 30, 50)
    out, t = letterbox(image, target, 64)
    r = min(64 / 30, 64 / 50)
    new_w, new_h = round(50 * r), round(30 * r)
    top, bottom = round((64 - new_h) / 2 - 0.1), round((64 - new_h) / 2 + 0.1)
    assert out.shape == (1, 64, 64) and (new_w, new_h, top, bottom) == (64, 38, 13, 13)
    np.testing.assert_allclose(out[0, :top], 114 / 255)
    np.testing.assert_allclose(out[0, top + new_h:], 114 / 255)
    assert t["letterbox"] == (64 / 50, 38 / 30, 0.0, 13.0)
    back = unletterbox_boxes(t["boxes"], t["letterbox"], (30, 50))
    np.testing.assert_allclose(back, target["boxes"], atol=1e-4)
    outside = unletterbox_boxes([[-5, 0, 70, 80]], t["letterbox"], (30, 50))
    np.testing.assert_allclose(outside, [[0, 0, 50, 30]])
    plain, t2 = letterbox(image, None, 64)
    assert np.array_equal(plain, out) and t2["boxes"].shape == (0, 4)


def test_flips_are_involutions():
    image, target = _drawn(np.random.default_rng(2), 20, 30)
    for flip in (hflip, vflip):
        back, t = flip(*flip(image, target))
        assert np.array_equal(back, image) and np.array_equal(t["mask"], target["mask"])
        np.testing.assert_allclose(t["boxes"], target["boxes"]) and np.testing.assert_allclose(t["points"],
                                                                                                target["points"])
    _, t = hflip(image, {"boxes": np.array([[2, 3, 5, 9]], np.float32), "labels": np.zeros(1, np.int64)})
    np.testing.assert_allclose(t["boxes"], [[25, 3, 28, 9]])


def test_boxes_leaving_the_image_are_clipped_or_dropped():
    t = {"boxes": np.zeros((3, 4), np.float32), "labels": np.arange(3),
         "points": np.zeros((3, 2), np.float32)}
    moved = np.array([[-5, 0, 5, 10], [-9.5, 0, 0.5, 10], [15, 15, 25, 25]], dtype=np.float64)
    out = filter_boxes(dict(t), moved, 20, 20, min_visible=0.1)
    np.testing.assert_allclose(out["boxes"], [[0, 0, 5, 10], [15, 15, 20, 20]])   # 5 % visible: dropped
    assert out["labels"].tolist() == [0, 2] and out["points"].tolist() == [[0, 0], [15, 15]]
    image, target = _drawn(np.random.default_rng(3), 20, 20, n=2)
    _, moved_out = place(image, target, 1.0, 1.0, 100, 100, 20, 20)
    assert moved_out["boxes"].shape == (0, 4) and moved_out["mask"].sum() == 0


def test_random_crop_keeps_the_targets():
    ds = SyntheticIR(6, size=96, seed=0, empty_fraction=0.0)
    rng = np.random.default_rng(0)
    for i in range(len(ds)):
        image, target = ds[i]
        out, t = random_crop(image, target, rng, 64)
        x1, y1 = target["boxes"][:, :2].min(0)
        x2, y2 = target["boxes"][:, 2:].max(0)
        if x2 - x1 <= 64 and y2 - y1 <= 64:
            assert len(t["boxes"]) == len(target["boxes"])
            wh = t["boxes"][:, 2:] - t["boxes"][:, :2]
            np.testing.assert_allclose(wh, target["boxes"][:, 2:] - target["boxes"][:, :2])
        else:
            assert len(t["boxes"]) >= 1
        assert int(t["mask"].sum()) <= int(target["mask"].sum()) and out.shape == (1, 64, 64)


def test_crops_anywhere_cover_the_image_and_crops_on_targets_do_not():
    """keep_targets=False draws the window uniformly: its corner takes every position from 0 to 96 - 32,
    and windows without the target occur; the default keeps the target (46-50 px) in every window, so
    windows start at 18-46 and the image's corners are never seen. crop_anywhere is that choice's
    probability in DetectionAugment (1: every crop free, 0: none), and 0 draws nothing (the random stream
    stays as it was)."""
    image = np.random.default_rng(0).random((1, 96, 96)).astype(np.float32)
    target = {"boxes": np.array([[46.0, 46.0, 50.0, 50.0]], np.float32), "labels": np.zeros(1, np.int64)}
    coords = np.stack(np.meshgrid(np.arange(96), np.arange(96), indexing="xy")).astype(np.float32)
    for keep, starts in ((True, (18, 46)), (False, (0, 64))):
        rng, corners, counts = np.random.default_rng(1), [], []
        for _ in range(400):
            out, t = random_crop(coords, target, rng, 32, pad_value=-1.0, keep_targets=keep)
            corners.append(out[:, 0, 0])
            counts.append(len(t["boxes"]))
        corners = np.array(corners)
        assert tuple(corners.min(0)) == (starts[0],) * 2 and tuple(corners.max(0)) == (starts[1],) * 2
        assert (min(counts) == 1) == keep
    for p, free in ((1.0, True), (0.0, False)):
        augment = DetectionAugment(32, hflip=0.0, crop=32, crop_anywhere=p)
        counts = [len(augment((image, target), np.random.default_rng(s))[1]["boxes"]) for s in range(60)]
        assert (min(counts) == 0) == free
    a = DetectionAugment(32, crop=32, crop_anywhere=0.0)((image, target), np.random.default_rng(5))
    b = DetectionAugment(32, crop=32)((image, target), np.random.default_rng(5))
    assert np.array_equal(a[0], b[0])


def test_augmented_dataset_is_seeded_per_epoch_and_index():
    ds = SyntheticIR(4, size=64, seed=1)
    a = AugmentedDataset(ds, 48, seed=3, scale=(0.7, 1.3), mosaic=0.5, vflip=0.5)
    b = AugmentedDataset(ds, 48, seed=3, scale=(0.7, 1.3), mosaic=0.5, vflip=0.5)
    first = [a[i] for i in range(4)]
    for i in (3, 0, 2):
        assert np.array_equal(first[i][0], b[i][0]) and np.array_equal(first[i][1]["boxes"], b[i][1]["boxes"])
    b.set_epoch(1)
    assert any(not np.array_equal(first[i][0], b[i][0]) for i in range(4))
    assert all(x.shape == (1, 48, 48) for x, _ in first)
    assert a.class_names == ["target"] and a.in_channels == 1
    val = AugmentedDataset(ds, 48, train=False)
    image, t = val[2]
    ref, ref_t = letterbox(*ds[2], 48)
    assert np.array_equal(image, ref) and np.array_equal(t["boxes"], ref_t["boxes"])


@pytest.mark.parametrize("call, fragment", [
    (lambda: DetectionAugment(64, hflip=1.5), "hflip must be a probability in \\[0, 1\\], got 1.5"),
    (lambda: DetectionAugment(64, crop=32, crop_anywhere=2), "crop_anywhere must be a probability"),
    (lambda: DetectionAugment(64, scale=(2, 1)), "scale must be \\(low, high\\)"),
    (lambda: DetectionAugment(0), "size must be a positive integer, got 0"),
    (lambda: mosaic([], np.random.default_rng(0), 32), "needs 4 samples, got 0"),
    (lambda: mosaic([_drawn(np.random.default_rng(0), 20, 20, channels=c) for c in (1, 1, 3, 1)],
                    np.random.default_rng(0), 32), "different channel counts \\[1, 3\\]"),
    (lambda: scale_jitter(np.zeros((4, 4)), {}, np.random.default_rng(0)), "expected an image \\(C, H, W\\)"),
])
def test_bad_arguments(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()
