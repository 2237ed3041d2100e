"""Object detection on top of tinyml.ops' box ops, NMS/merging kernels and detection losses.

    metrics.py   COCO box AP/AR as pycocotools' COCOeval (coco_evaluate), and the infrared
                 small-target metrics Pd/Fa and IoU/nIoU (irstd_metrics)
    sahi.py      sliced inference (SAHI): slice boxes, batched inference over slices, merging by
                 NMS / NMM / GREEDYNMM with IoU or IoS, as the sahi package does
    mclc.py      pseudo-masks from single-point labels by Monte Carlo Linear Clustering (mclc_pseudo_masks)
    segment.py   SmallTargetSegmenter: a small U-Net for infrared small-target masks (soft-IoU + BCE)
    yolo.py      Detector: YOLOv8-style anchor-free detector (CSP backbone, PAN neck with a P2 level,
                 DetectHead) with ultralytics' v8 loss (cls bce/focal/atfl/varifocal, box ciou/giou/nwd + DFL)
    head.py      DetectHead (decoupled DFL box + class branches), anchors, DFL decoding (dist2bbox)
    assigner.py  TaskAlignedAssigner as ultralytics' (top-k 10, alpha 0.5, beta 6), plus a nearest-anchor
                 fallback and an NWD overlap for targets smaller than the stride
    centernet.py CenterNet: heatmap head at stride 4/2/1 for point-like targets (penalty-reduced focal loss)
    targets.py   input/target checks and padding shared by the detectors
"""
from .centernet import CenterNet  # noqa: F401
from .mclc import mclc_pseudo_masks  # noqa: F401
from .segment import SmallTargetSegmenter  # noqa: F401
from .yolo import Detector  # noqa: F401
