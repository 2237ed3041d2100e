"""Test oracles in torch: ultralytics' TaskAlignedAssigner (utils/tal.py), bbox_iou (utils/metrics.py) and
v8DetectionLoss / BboxLoss / DFLoss (utils/loss.py), re-implemented from their formulas (ultralytics is not
installed as a test dependency: it pulls opencv and more; these are the few functions the tests need)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bbox_iou_ciou(box1, box2, eps=1e-7):
    """ultralytics.utils.metrics.bbox_iou(box1, box2, xywh=False, CIoU=True), last dim dropped."""
    b1_x1, b1_y1, b1_x2, b1_y2 = box1.unbind(-1)
    b2_x1, b2_y1, b2_x2, b2_y2 = box2.unbind(-1)
    w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
    w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps
    inter = (torch.minimum(b1_x2, b2_x2) - torch.maximum(b1_x1, b2_x1)).clamp(0) * \
            (torch.minimum(b1_y2, b2_y2) - torch.maximum(b1_y1, b2_y1)).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = torch.maximum(b1_x2, b2_x2) - torch.minimum(b1_x1, b2_x1)
    ch = torch.maximum(b1_y2, b2_y2) - torch.minimum(b1_y1, b2_y1)
    c2 = cw.pow(2) + ch.pow(2) + eps
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2).pow(2) + (b2_y1 + b2_y2 - b1_y1 - b1_y2).pow(2)) / 4
    v = (4 / math.pi ** 2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


@torch.no_grad()
def tal_assign(pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt, topk=10, num_classes=1,
               alpha=0.5, beta=6.0, eps=1e-9):
    """ultralytics TaskAlignedAssigner.forward, step for step (gt_labels / mask_gt (b, n, 1))."""
    bs, n_max = pd_scores.shape[0], gt_bboxes.shape[1]
    na = pd_bboxes.shape[-2]
    # select_candidates_in_gts
    lt, rb = gt_bboxes.view(-1, 1, 4).chunk(2, 2)
    deltas = torch.cat((anc_points[None] - lt, rb - anc_points[None]), dim=2).view(bs, n_max, na, -1)
    mask_in_gts = deltas.amin(3).gt_(eps)
    # get_box_metrics
    mask = (mask_in_gts * mask_gt).bool()
    overlaps = torch.zeros([bs, n_max, na], dtype=pd_bboxes.dtype)
    bbox_scores = torch.zeros([bs, n_max, na], dtype=pd_scores.dtype)
    ind = torch.zeros([2, bs, n_max], dtype=torch.long)
    ind[0] = torch.arange(end=bs).view(-1, 1).expand(-1, n_max)
    ind[1] = gt_labels.squeeze(-1)
    bbox_scores[mask] = pd_scores[ind[0], :, ind[1]][mask]
    pd_boxes = pd_bboxes.unsqueeze(1).expand(-1, n_max, -1, -1)[mask]
    gt_boxes = gt_bboxes.unsqueeze(2).expand(-1, -1, na, -1)[mask]
    overlaps[mask] = bbox_iou_ciou(gt_boxes, pd_boxes).clamp_(0)
    align_metric = bbox_scores.pow(alpha) * overlaps.pow(beta)
    # select_topk_candidates
    topk_mask = mask_gt.expand(-1, -1, topk).bool()
    _, topk_idxs = torch.topk(align_metric, topk, dim=-1, largest=True)
    topk_idxs.masked_fill_(~topk_mask, 0)
    count = torch.zeros(align_metric.shape, dtype=torch.int8)
    ones = torch.ones_like(topk_idxs[:, :, :1], dtype=torch.int8)
    for k in range(topk):
        count.scatter_add_(-1, topk_idxs[:, :, k:k + 1], ones)
    count.masked_fill_(count > 1, 0)
    mask_pos = count.to(align_metric.dtype) * mask_in_gts * mask_gt
    # select_highest_overlaps
    fg_mask = mask_pos.sum(-2)
    if fg_mask.max() > 1:
        multi = (fg_mask.unsqueeze(1) > 1).expand(-1, n_max, -1)
        is_max = torch.zeros(mask_pos.shape, dtype=mask_pos.dtype)
        is_max.scatter_(1, overlaps.argmax(1).unsqueeze(1), 1)
        mask_pos = torch.where(multi, is_max, mask_pos).float()
        fg_mask = mask_pos.sum(-2)
    target_gt_idx = mask_pos.argmax(-2)
    # get_targets
    batch_ind = torch.arange(end=bs, dtype=torch.int64)[..., None]
    flat_idx = target_gt_idx + batch_ind * n_max
    target_labels = gt_labels.long().flatten()[flat_idx].clamp_(0)
    target_bboxes = gt_bboxes.view(-1, 4)[flat_idx]
    target_scores = torch.zeros((bs, na, num_classes), dtype=torch.int64)
    target_scores.scatter_(2, target_labels.unsqueeze(-1), 1)
    target_scores = torch.where(fg_mask[:, :, None].repeat(1, 1, num_classes) > 0, target_scores, 0)
    align_metric = align_metric * mask_pos
    pos_align = align_metric.amax(dim=-1, keepdim=True)
    pos_overlaps = (overlaps * mask_pos).amax(dim=-1, keepdim=True)
    norm = (align_metric * pos_overlaps / (pos_align + eps)).amax(-2).unsqueeze(-1)
    return target_labels, target_bboxes, target_scores * norm, fg_mask.bool(), target_gt_idx


def v8_detection_loss(feats, strides, gt_labels, gt_bboxes, mask_gt, num_classes, reg_max=16,
                      gains=(7.5, 0.5, 1.5)):
    """ultralytics v8DetectionLoss.__call__ on head outputs `feats` (torch, per level (B, no, H, W)) with the
    targets already padded (gt in pixels). Returns (total, (box, cls, dfl))."""
    b = feats[0].shape[0]
    no = num_classes + 4 * reg_max
    cat = torch.cat([xi.view(b, no, -1) for xi in feats], 2)
    pred_distri, pred_scores = cat.split((4 * reg_max, num_classes), 1)
    pred_scores = pred_scores.permute(0, 2, 1).contiguous()
    pred_distri = pred_distri.permute(0, 2, 1).contiguous()
    anchor_points, stride_tensor = [], []
    for f, s in zip(feats, strides):
        h, w = f.shape[2:]
        sy, sx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        anchor_points.append(torch.stack((sx, sy), -1).view(-1, 2).to(f.dtype))
        stride_tensor.append(torch.full((h * w, 1), s, dtype=f.dtype))
    anchor_points, stride_tensor = torch.cat(anchor_points), torch.cat(stride_tensor)
    proj = torch.arange(reg_max, dtype=pred_distri.dtype)
    dist = pred_distri.view(b, -1, 4, reg_max).softmax(3).matmul(proj)
    lt, rb = dist.chunk(2, -1)
    pred_bboxes = torch.cat((anchor_points - lt, anchor_points + rb), -1)
    _, target_bboxes, target_scores, fg_mask, _ = tal_assign(
        pred_scores.detach().sigmoid(), (pred_bboxes.detach() * stride_tensor).type(gt_bboxes.dtype),
        anchor_points * stride_tensor, gt_labels, gt_bboxes, mask_gt, num_classes=num_classes)
    target_scores_sum = max(target_scores.sum(), 1)
    cls = F.binary_cross_entropy_with_logits(pred_scores, target_scores.to(pred_scores.dtype),
                                             reduction="none").sum() / target_scores_sum
    box = dfl = torch.zeros((), dtype=pred_scores.dtype)
    if fg_mask.sum():
        target_bboxes = target_bboxes / stride_tensor
        weight = target_scores.sum(-1)[fg_mask].unsqueeze(-1)
        iou = bbox_iou_ciou(pred_bboxes[fg_mask], target_bboxes[fg_mask]).unsqueeze(-1)
        box = ((1.0 - iou) * weight).sum() / target_scores_sum
        x1y1, x2y2 = target_bboxes.chunk(2, -1)
        ltrb = torch.cat((anchor_points - x1y1, x2y2 - anchor_points), -1).clamp_(0, reg_max - 1 - 0.01)
        pd = pred_distri[fg_mask].view(-1, reg_max)
        t = ltrb[fg_mask]
        tl = t.long()
        tr = tl + 1
        wl = tr - t
        wr = 1 - wl
        d = (F.cross_entropy(pd, tl.view(-1), reduction="none").view(tl.shape) * wl
             + F.cross_entropy(pd, tr.view(-1), reduction="none").view(tl.shape) * wr).mean(-1, keepdim=True)
        dfl = (d * weight).sum() / target_scores_sum
    box, cls, dfl = box * gains[0], cls * gains[1], dfl * gains[2]
    return (box + cls + dfl) * b, (box, cls, dfl)
