"""cpu adapters: non-maximum suppression / merging and CIoU's atan (csrc/boxes.cpp).

float32 and float64 boxes (scores of the same dtype) go to the C++ kernels; anything else returns
NotImplemented and the numpy reference runs. `order` is the visiting order the op computed.
"""
import numpy as np

from . import _C, contiguous, native

__all__ = ["box_aspect_atan", "nmm_forward", "nms_forward"]


def _suffix(a) -> str:
    return "f32" if a.dtype == np.float32 else "f64"


def box_aspect_atan(w, h):
    if not native(w, h) or w.shape != h.shape:
        return NotImplemented
    return getattr(_C, f"box_aspect_atan_{_suffix(w)}")(contiguous(w), contiguous(h))


def nms_forward(boxes, order, threshold, metric, inclusive):
    if not native(boxes):
        return NotImplemented
    return getattr(_C, f"nms_forward_{_suffix(boxes)}")(contiguous(boxes), np.require(order, np.int64, "C"),
                                                        float(threshold), metric, bool(inclusive))


def nmm_forward(boxes, scores, order, threshold, metric, greedy):
    if not native(boxes, scores):
        return NotImplemented
    return getattr(_C, f"nmm_forward_{_suffix(boxes)}")(contiguous(boxes), contiguous(scores),
                                                        np.require(order, np.int64, "C"), float(threshold),
                                                        metric, bool(greedy))
