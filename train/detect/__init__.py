"""Detection data for `tinyml detect` (issue #13): a synthetic infrared set, COCO / YOLO datasets,
augmentation and drawing. The shared sample format: (image float32 (C, H, W) in [0, 1], target) with
target boxes (n, 4) float32 xyxy pixels, labels (n,) int64 in 0..K-1, points (n, 2) float32 (x, y),
optional mask (H, W) uint8, image_id, file_name, orig_size (H, W). Guide: docs/detection_data.md.

    synthetic.py     SyntheticIR: seeded 1-9 px targets on cloud / horizon / line clutter with sensor
                     noise (boxes, points, masks); write_synthetic_ir writes it in the COCO or YOLO layout
    data.py          CocoDetection, open_detection_dataset (COCO or YOLO, by what the folder holds), collate
    yolo.py          YoloDetection (re-exported by data.py), read_yolo_names (data.yaml's names)
    dataset_base.py  load_image and the error policy both formats share: raise or skip-and-report bad
                     files, clip boxes over the border, drop empty ones, convert mixed channel counts
    coco_masks.py    COCO RLE encode / decode and polygon rasterisation, bit-exact with pycocotools
    writers.py       save_image (PNG 8/16 bit), write_coco_split, write_yolo_split, write_yolo_yaml
    transforms.py    resize (bilinear / nearest-exact), letterbox and its inverse, flips, place (resize +
                     paste + box clipping / dropping as ultralytics' box_candidates)
    augment.py       scale_jitter, random_crop (keeps targets), mosaic, DetectionAugment, AugmentedDataset
                     (fit_scale first, for training on crops at the evaluation scale)
    draw.py          draw_boxes: boxes (and class / score text) on an image, saved as PNG

The job itself (`tinyml detect train / predict / eval`, train/commands/detect.py; guide: docs/detection.md):

    settings.py      DetectRun (the settings), their per-architecture defaults resolved (crop, EMA decay),
                     detect.json (written resolved; older records read with the values they ran with)
    run.py           train_detector (data, detector, trainer, run folder), load_detector (a trained run's
                     detector and class names / category ids / img / tta)
    loop.py          EpochSampler (seeded per-epoch order, resumable) and DetectTrainer: train/trainer.py's
                     Trainer with loss parts, val AP / Pd / Fa, the loss + AP plot and a time limit
    ema.py           ModelEMA: the moving average of the weights that is evaluated and saved for inference
    evaluate.py      evaluate_detector (COCO AP by coco_evaluate, Pd / Fa from boxes), predict_dataset,
                     COCO ground truth / results, format_metrics (pycocotools' summary table)
    predict.py       predict_source: images -> predictions.json (COCO results) + drawn PNGs, SAHI slicing
"""
