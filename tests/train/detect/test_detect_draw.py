"""draw_boxes: the outline runs around the box without covering the target; text, PNG, errors."""
from __future__ import annotations

import numpy as np
import pytest
from tinyml.train.detect.draw import PALETTE, draw_boxes


def test_outline_surrounds_the_box_and_leaves_the_target_visible(tmp_path):
    from PIL import Image

    image = np.zeros((1, 40, 50), dtype=np.float32)
    image[0, 20:22, 30:33] = 1.0                                         # a 3 x 2 px target
    path = str(tmp_path / "out" / "pred.png")
    out = draw_boxes(image, [[30, 20, 33, 22]], labels=[1], path=path)
    assert out.shape == (40, 50, 3) and out.dtype == np.uint8
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), out)
    assert np.all(out[20:22, 30:33] == 255)                             # the target is untouched
    colour = np.array(PALETTE[1])
    for y, x in ((18, 28), (18, 34), (23, 28), (23, 34), (18, 31), (21, 28)):   # outline 2 px outside
        assert np.array_equal(out[y, x], colour), (y, x, out[y, x])
    assert np.all(out[19, 29:34] == 0)                                  # the gap between box and outline
    assert np.any(out[:18] != 0)                                        # the label's name above the box
    bare = draw_boxes(image, [[30, 20, 33, 22]])
    assert np.all(bare[:18] == 0) and np.array_equal(bare[18, 28], np.array(PALETTE[0]))   # no text


def test_text_and_colours_per_class():
    image = np.full((3, 64, 64), 0.5, dtype=np.float32)
    plain = draw_boxes(image, [[10, 30, 14, 34], [40, 0, 44, 3]], labels=[0, 2])
    named = draw_boxes(image, [[10, 30, 14, 34], [40, 0, 44, 3]], labels=[0, 2], scores=[0.91, 0.4],
                       class_names=["target", "bird", "plane"])
    changed = np.any(named != plain, axis=2)
    assert changed[:28].any()                                            # text above the first box
    assert changed[6:].any() and np.array_equal(named[28, 8], np.array(PALETTE[0]))
    colours = {tuple(c) for c in named.reshape(-1, 3)}
    assert tuple(PALETTE[2]) in colours and tuple(PALETTE[0]) in colours


def test_no_boxes_and_uint8_images():
    image = (np.arange(100, dtype=np.uint8).reshape(10, 10))
    out = draw_boxes(image, np.zeros((0, 4)))
    assert np.array_equal(out[..., 0], image) and np.array_equal(out[..., 2], image)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"labels": [0, 1]}, "1 boxes but 2 labels"),
    ({"scores": []}, "1 boxes but 0 scores"),
    ({"boxes": [[0, 0, np.nan, 3]]}, "boxes must be finite"),
    ({"image": np.zeros((2, 5, 5))}, r"got shape \(2, 5, 5\)"),
])
def test_bad_input(kwargs, fragment):
    args = {"image": np.zeros((5, 5)), "boxes": [[1, 1, 2, 2]], **kwargs}
    with pytest.raises(ValueError, match=fragment):
        draw_boxes(**args)
