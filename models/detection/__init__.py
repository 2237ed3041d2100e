"""Object detection on top of tinyml.ops' box ops, NMS/merging kernels and detection losses.

    metrics.py   COCO box AP/AR as pycocotools' COCOeval (coco_evaluate), and the infrared
                 small-target metrics Pd/Fa and IoU/nIoU (irstd_metrics)
    sahi.py      sliced inference (SAHI): slice boxes, batched inference over slices, merging by
                 NMS / NMM / GREEDYNMM with IoU or IoS, as the sahi package does

Detection heads, label assigners and box coders are not here yet (issue #13).
"""
