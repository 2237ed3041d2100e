"""coco_masks against pycocotools.mask: RLE strings, decoding, polygon rasterisation, annToMask's merge."""
from __future__ import annotations

import numpy as np
import pytest
from tinyml.train.detect.coco_masks import polygon_to_mask, rle_decode, rle_encode, segmentation_to_mask

mask_api = pytest.importorskip("pycocotools.mask")


def test_rle_strings_equal_pycocotools():
    rng = np.random.default_rng(0)
    for _ in range(100):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        ours = rle_encode(m)
        ref = mask_api.encode(np.asfortranarray(m))
        assert ours["counts"] == ref["counts"].decode() and ours["size"] == list(ref["size"])
        assert np.array_equal(rle_decode(ours), m)
        assert np.array_equal(rle_decode(ref), m)                    # bytes counts, as pycocotools returns
    big = np.zeros((300, 300), dtype=np.uint8)
    big[100:250, 7:290] = 1                                          # long runs: several 5-bit groups
    assert rle_encode(big)["counts"] == mask_api.encode(np.asfortranarray(big))["counts"].decode()


def test_uncompressed_rle_and_polygons_equal_pycocotools():
    rng = np.random.default_rng(1)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(2, 50, 2))
        polygon = rng.uniform(-3, max(h, w) + 3, 2 * int(rng.integers(3, 9))).tolist()
        ref = mask_api.decode(mask_api.merge(mask_api.frPyObjects([polygon], h, w)))
        assert np.array_equal(polygon_to_mask(polygon, h, w), ref)
    two = [[1, 1, 8, 1, 8, 6, 1, 6], [10.5, 3.2, 15.7, 3.0, 13.1, 9.9]]
    ref = mask_api.decode(mask_api.merge(mask_api.frPyObjects(two, 12, 18)))
    assert np.array_equal(segmentation_to_mask(two, 12, 18), ref)


def test_uncompressed_counts_decode():
    m = np.zeros((4, 5), dtype=np.uint8)
    m[1:3, 2:4] = 1
    counts = [9, 2, 2, 2, 5]                                         # column-major runs, zeros first
    assert np.array_equal(rle_decode({"size": [4, 5], "counts": counts}), m)
    ref = mask_api.decode(mask_api.frPyObjects({"size": [4, 5], "counts": counts}, 4, 5))
    assert np.array_equal(segmentation_to_mask({"size": [4, 5], "counts": counts}, 4, 5), ref)


@pytest.mark.parametrize("call, fragment", [
    (lambda: rle_decode({"size": [4, 5], "counts": [3, 2]}), "sum to 5 with size"),
    (lambda: rle_decode({"counts": [3]}), "needs 'size'"),
    (lambda: rle_decode({"size": [2, 2], "counts": "a"}), "truncated"),
    (lambda: polygon_to_mask([1, 2, 3], 5, 5), "even number"),
    (lambda: segmentation_to_mask({"size": [3, 3], "counts": [9]}, 4, 4), r"RLE size \[3, 3\]"),
    (lambda: segmentation_to_mask("x", 4, 4), "list of polygons or an RLE"),
    (lambda: rle_encode(np.zeros(3)), "2-D"),
])
def test_malformed_masks_raise(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()
