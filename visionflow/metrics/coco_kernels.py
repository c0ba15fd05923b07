"""Numba kernels: box IoU, pycocotools' greedy matching, and its precision/recall accumulation.

Each kernel handles a contiguous range ``[start, stop)`` of (category, image) groups or of
categories and releases the GIL (``nogil``), so ``coco_parallel.run_chunks`` runs ranges on
several threads that write disjoint parts of preallocated outputs. Arithmetic follows the C and
numpy code of pycocotools operation by operation (no fastmath), so results are bit-identical.

Group layout: GT rows ``gt_start[g]:gt_stop[g]`` (file order) and detection rows
``dt_start[g]:dt_stop[g]`` (score order, at most maxDets[-1]) of group ``g``; its IoU matrix
[D, G] is ``ious[iou_start[g]:iou_start[g] + D * G]`` in row-major order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

TRUE_POSITIVE, FALSE_POSITIVE, IGNORED = 0, 1, 2  # detection states, per (area range, IoU threshold)
EPS = np.spacing(1)  # pycocotools' guard in tp / (tp + fp + eps)


@njit(cache=True, nogil=True)
def box_ious(start, stop, gt_start, gt_stop, dt_start, dt_stop, iou_start, gt_boxes, gt_crowd, dt_boxes, ious):
    """IoU of XYWH boxes, as pycocotools' ``bbIou``: for a crowd GT the union is the detection's area."""
    for g in range(start, stop):
        g0, d0, offset = gt_start[g], dt_start[g], iou_start[g]
        num_gt = gt_stop[g] - g0
        for j in range(num_gt):
            gx, gy, gw, gh = gt_boxes[g0 + j, 0], gt_boxes[g0 + j, 1], gt_boxes[g0 + j, 2], gt_boxes[g0 + j, 3]
            gt_area = gw * gh
            for d in range(dt_stop[g] - d0):
                dx, dy, dw, dh = dt_boxes[d0 + d, 0], dt_boxes[d0 + d, 1], dt_boxes[d0 + d, 2], dt_boxes[d0 + d, 3]
                out = offset + d * num_gt + j
                ious[out] = 0.0
                w = min(dw + dx, gw + gx) - max(dx, gx)
                if w <= 0:
                    continue
                h = min(dh + dy, gh + gy) - max(dy, gy)
                if h <= 0:
                    continue
                inter = w * h
                union = dw * dh if gt_crowd[g0 + j] else dw * dh + gt_area - inter
                ious[out] = inter / union


@njit(cache=True, nogil=True)
def match_groups(start, stop, gt_start, gt_stop, dt_start, dt_stop, iou_start, ious, gt_area, gt_ignore,
                 gt_crowd, gt_has_id, dt_area, area_ranges, iou_thresholds, states):
    """pycocotools' ``evaluateImg`` for groups ``[start, stop)``: fills ``states`` [N, A, T] (uint8).

    Per area range, GT outside the range are ignored and visited last; each detection, best score
    first, takes the GT with the highest IoU >= threshold, preferring non-ignored GT; a crowd GT can
    take several. A detection matched to an ignored GT is ignored, and so is an unmatched one
    outside the range. A match to a GT whose id is 0 counts as unmatched, as in pycocotools
    (it stores matches as GT ids and tests them against 0).
    """
    most_gt = 0
    for g in range(start, stop):
        most_gt = max(most_gt, gt_stop[g] - gt_start[g])
    ignored = np.empty(most_gt, dtype=np.bool_)  # scratch, per GT of the current group
    visit = np.empty(most_gt, dtype=np.int64)
    taken = np.empty(most_gt, dtype=np.bool_)
    for g in range(start, stop):
        g0, d0 = gt_start[g], dt_start[g]
        num_gt, num_dt = gt_stop[g] - g0, dt_stop[g] - d0
        iou = ious[iou_start[g]:iou_start[g] + num_dt * num_gt].reshape((num_dt, num_gt))
        for a in range(area_ranges.shape[0]):
            low, high = area_ranges[a, 0], area_ranges[a, 1]
            if num_gt == 0:  # nothing to match, at any threshold
                for d in range(num_dt):
                    outside = dt_area[d0 + d] < low or dt_area[d0 + d] > high
                    state = _state(False, False, False, outside)
                    for t in range(iou_thresholds.shape[0]):
                        states[d0 + d, a, t] = state
                continue
            for j in range(num_gt):
                ignored[j] = gt_ignore[g0 + j] or gt_area[g0 + j] < low or gt_area[g0 + j] > high
            _ignored_last(ignored[:num_gt], visit)
            for t in range(iou_thresholds.shape[0]):
                threshold = min(iou_thresholds[t], 1 - 1e-10)
                for j in range(num_gt):
                    taken[j] = False
                for d in range(num_dt):
                    best, m = threshold, -1
                    for position in range(num_gt):
                        j = visit[position]
                        if taken[j] and not gt_crowd[g0 + j]:
                            continue
                        if m > -1 and not ignored[m] and ignored[j]:
                            break
                        if iou[d, j] < best:
                            continue
                        best, m = iou[d, j], j
                    outside = dt_area[d0 + d] < low or dt_area[d0 + d] > high
                    if m == -1:
                        states[d0 + d, a, t] = _state(False, False, False, outside)
                    else:
                        taken[m] = True
                        states[d0 + d, a, t] = _state(True, ignored[m], gt_has_id[g0 + m], outside)


@njit(cache=True, nogil=True)
def _ignored_last(ignored, visit):
    """``visit`` <- GT positions with the non-ignored first, each part in order (a stable sort)."""
    n = 0
    for flag in (False, True):
        for j in range(ignored.shape[0]):
            if ignored[j] == flag:
                visit[n] = j
                n += 1


@njit(cache=True, nogil=True)
def _state(matched, matched_ignored, matched_id_nonzero, outside):
    """A detection's state from pycocotools' ``dtm`` (the matched GT's id, 0 if none) and ``dtIg``
    (the matched GT is ignored, or unmatched and ``outside`` the area range)."""
    if matched and matched_id_nonzero:
        return IGNORED if matched_ignored else TRUE_POSITIVE
    return IGNORED if matched_ignored or outside else FALSE_POSITIVE


@njit(cache=True, nogil=True)
def accumulate_categories(start, stop, category_start, scores, ranks, states, num_positives, max_dets,
                          recall_thresholds, precision, recall, score_table):
    """pycocotools' ``accumulate`` for categories ``[start, stop)``.

    A category's detections ``category_start[k]:category_start[k + 1]`` are in (image, rank) order;
    a stable sort by descending score gives pycocotools' order, and keeping ranks < maxDet keeps
    that order. Writes precision and score_table [T, R, K, A, M], recall [T, K, A, M]; entries of
    (k, a) without positive GT (``num_positives`` [K, A]) keep their -1.
    """
    num_ranges, num_thresholds = states.shape[1], states.shape[2]
    for k in range(start, stop):
        first = category_start[k]
        order = np.argsort(-scores[first:category_start[k + 1]], kind="mergesort") + first
        ordered_scores = scores[order]
        ordered_states = np.empty((num_ranges, num_thresholds, order.shape[0]), dtype=np.uint8)
        for i in range(order.shape[0]):  # gathered once in score order: the curves below read it in sequence
            for a in range(num_ranges):
                for t in range(num_thresholds):
                    ordered_states[a, t, i] = states[order[i], a, t]
        kept = np.empty(order.shape[0], dtype=np.int64)
        for m in range(max_dets.shape[0]):
            count = 0
            for i in range(order.shape[0]):
                if ranks[order[i]] < max_dets[m]:
                    kept[count] = i
                    count += 1
            for a in range(num_ranges):
                if num_positives[k, a] == 0:
                    continue
                for t in range(num_thresholds):
                    recall[t, k, a, m] = _precision_at_recalls(
                        kept[:count], ordered_states[a, t], num_positives[k, a], ordered_scores, recall_thresholds,
                        precision[t, :, k, a, m], score_table[t, :, k, a, m])


@njit(cache=True, nogil=True)
def _precision_at_recalls(kept, state, num_positives, scores, recall_thresholds, precision_out, score_out):
    """One PR curve over the detections ``kept`` (positions, ascending, into ``state`` and ``scores``,
    which are in score order): fills precision_out and score_out [R]; returns the final recall."""
    n = kept.shape[0]
    rc = np.empty(n)
    pr = np.empty(n)
    tp = fp = 0.0
    for i in range(n):
        s = state[kept[i]]
        if s == TRUE_POSITIVE:
            tp += 1.0
        elif s == FALSE_POSITIVE:
            fp += 1.0
        rc[i] = tp / num_positives
        pr[i] = tp / (fp + tp + EPS)
    for i in range(n - 1, 0, -1):  # precision envelope: non-increasing from the right
        if pr[i] > pr[i - 1]:
            pr[i - 1] = pr[i]
    i = 0
    for r in range(recall_thresholds.shape[0]):  # np.searchsorted(rc, thresholds, side="left")
        while i < n and rc[i] < recall_thresholds[r]:
            i += 1
        precision_out[r] = pr[i] if i < n else 0.0
        score_out[r] = scores[kept[i]] if i < n else 0.0
    return rc[n - 1] if n > 0 else 0.0
