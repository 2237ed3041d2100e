"""NMS on the cpu: tinyml's C++ kernel vs numpy peers, 10k boxes, 2 threads.

    python3 bench/nms_cpu.py [--n 10000] [--repeat 7] [--merge]

torchvision.ops.nms is the natural peer, but torchvision's wheel for this torch (2.13, CPU) is built
against a CUDA torch and its nms does not import here; the script uses it when it does import.
The peers that run:
  - numpy greedy NMS (py-faster-rcnn's loop: sort, then one vectorised IoU row per kept box,
    suppress IoU > t), the same semantics as torchvision.ops.nms, against tinyml.ops.nms;
  - sahi 0.12's numpy nms (postprocess/_numpy_backend.nms_numpy: IoU >= t, coordinate tie-break,
    dense or sparse matrix), against tinyml.ops.nms_match (same semantics).
--merge adds sahi's merging: tinyml.ops.greedy_nmm / nmm against sahi's greedy_nmm_numpy / nmm_numpy
(IoU >= t; the {keeper: merged} dicts checked equal, insertion order included).
numpy uses no threads here, so the frameworks alternate in one process (no OpenMP/BLAS pools to
contend; torchvision, where it runs, alternates too, both on 2 threads). Each row: median of
`repeat` timed runs after one warm-up, the same boxes for both, the
kept indices checked equal, and the ratio peer time / tinyml time (> 1: tinyml is faster).
Boxes: random centres in a 1000 x 1000 image, sides 10-100 px, uniform scores (float32).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tinyml  # noqa: E402
import tinyml.ops as O  # noqa: E402


def numpy_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> np.ndarray:
    """py-faster-rcnn's nms (torchvision semantics: stable score order, suppress IoU > thr)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]))
        inter = w * h
        iou = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[1:][~(iou > thr)]
    return np.asarray(keep, dtype=np.int64)


def make_boxes(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    c = rng.uniform(0, 1000, (n, 2))
    wh = rng.uniform(10, 100, (n, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)
    return boxes, rng.uniform(0, 1, n).astype(np.float32)


def torchvision_nms():
    """torchvision.ops.nms where it runs here (torch on 2 threads), else None."""
    try:
        import torch
        from torchvision.ops import nms

        torch.set_num_threads(2)
        nms(torch.zeros(1, 4), torch.zeros(1), 0.5)  # the wheel may import but lack the operator
        return nms
    except Exception:  # noqa: BLE001 - ImportError, or torchvision's "operator does not exist" RuntimeError
        return None


def median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def merge_rows(tb, ts, pred, thr: float, repeat: int) -> list:
    """greedy_nmm and nmm against sahi's numpy merging (same dicts, same insertion order)."""
    from sahi.postprocess._numpy_backend import greedy_nmm_numpy, nmm_numpy

    rows = []
    for name, ours, theirs in (("greedy_nmm", O.greedy_nmm, greedy_nmm_numpy), ("nmm", O.nmm, nmm_numpy)):
        want = theirs(pred, "IOU", thr)
        got = ours(tb, ts, thr, "IOU")
        assert got == want and list(got) == list(want), f"tinyml.ops.{name} differs from sahi's"
        rows.append((f"{name}, IoU >= {thr}", f"sahi {theirs.__name__}", len(want),
                     median_ms(lambda: theirs(pred, "IOU", thr), repeat),
                     median_ms(lambda: ours(tb, ts, thr, "IOU"), repeat)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--merge", action="store_true", help="also time greedy_nmm and nmm against sahi's")
    args = ap.parse_args()
    tinyml.set_num_threads(2)
    tv_nms = torchvision_nms()
    boxes, scores = make_boxes(args.n)
    tb, ts = tinyml.tensor(boxes), tinyml.tensor(scores)
    pred = np.concatenate([boxes, scores[:, None], np.zeros((args.n, 1), np.float32)], 1)
    rows = []
    for thr in (0.3, 0.5, 0.7):
        want = numpy_nms(boxes, scores, thr)
        assert np.array_equal(O.nms(tb, ts, thr).numpy(), want), "tinyml.ops.nms differs from the numpy nms"
        rows.append((f"nms, IoU > {thr}", "numpy (py-faster-rcnn)", len(want),
                     median_ms(lambda: numpy_nms(boxes, scores, thr), args.repeat),
                     median_ms(lambda: O.nms(tb, ts, thr), args.repeat)))
        if tv_nms is not None:
            import torch  # loaded already by torchvision_nms

            tbx, tsx = torch.from_numpy(boxes), torch.from_numpy(scores)
            assert np.array_equal(tv_nms(tbx, tsx, thr).numpy(), want), "torchvision's nms differs"
            rows.append((f"nms, IoU > {thr}", "torchvision.ops.nms", len(want),
                         median_ms(lambda: tv_nms(tbx, tsx, thr), args.repeat),
                         median_ms(lambda: O.nms(tb, ts, thr), args.repeat)))
        try:
            from sahi.postprocess._numpy_backend import nms_numpy
        except ImportError:
            continue
        want = nms_numpy(pred, "IOU", thr)
        assert O.nms_match(tb, ts, thr, "IOU").numpy().tolist() == want, "nms_match differs from sahi's"
        rows.append((f"nms, IoU >= {thr} (sahi order)", "sahi nms_numpy", len(want),
                     median_ms(lambda: nms_numpy(pred, "IOU", thr), args.repeat),
                     median_ms(lambda: O.nms_match(tb, ts, thr, "IOU"), args.repeat)))
        if args.merge:
            rows += merge_rows(tb, ts, pred, thr, args.repeat)
    print(f"{args.n} boxes, float32; {platform.processor() or platform.machine()}, tinyml threads "
          f"{tinyml.get_num_threads()}; median of {args.repeat}")
    print("| case | peer | kept | peer ms | tinyml ms | ratio (peer / tinyml) |")
    print("|---|---|---|---|---|---|")
    for case, peer, kept, tp, tt in rows:
        print(f"| {case} | {peer} | {kept} | {tp:.2f} | {tt:.2f} | {tp / tt:.2f}x |")


if __name__ == "__main__":
    main()
