"""The IoU matrix [D, G] of every (category, image) group, into one flat buffer, bit-identical to
pycocotools' (``COCOeval.computeIoU`` / ``computeOks``).

- boxes: ``coco_kernels.box_ious`` (numba, ``bbIou``'s arithmetic), on ``workers`` threads;
- masks: ``pycocotools.mask.iou`` itself, once per group that has both GT and detections;
- keypoints: OKS with ``computeOks``' numpy expressions, vectorized over all (detection, GT) pairs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pycocotools import mask as mask_utils

from visionflow.metrics.coco_data import Detections, GroundTruth
from visionflow.metrics.coco_kernels import box_ious
from visionflow.metrics.coco_parallel import run_chunks
from visionflow.metrics.coco_params import KEYPOINT_SIGMAS

if TYPE_CHECKING:
    from visionflow.metrics.coco_match import Groups

PAIRS_PER_CHUNK = 1 << 14  # OKS temporaries peak near 26 MB, whatever the input size
_KEYPOINT_VARIANCES = (KEYPOINT_SIGMAS * 2) ** 2


def compute_ious(gt: GroundTruth, dt: Detections, groups: Groups, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(flat IoU buffer, start [P] of each group's row-major [D, G] matrix in it)."""
    sizes = groups.iou_sizes
    iou_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    ious = np.zeros(int(sizes.sum()))
    gt_rows, dt_rows = groups.gt_rows, groups.dt_rows
    if gt.iou_type == "bbox":
        run_chunks(box_ious, sizes, workers, groups.gt_start, groups.gt_stop, groups.dt_start, groups.dt_stop,
                   iou_start, gt.boxes[gt_rows], gt.crowd[gt_rows], dt.boxes[dt_rows], ious)
    elif gt.iou_type == "segm":
        for g in np.flatnonzero(sizes):
            gt_group = gt_rows[groups.gt_start[g]:groups.gt_stop[g]]
            dt_group = dt_rows[groups.dt_start[g]:groups.dt_stop[g]]
            ious[iou_start[g]:iou_start[g] + sizes[g]] = _mask_ious(gt, dt, gt_group, dt_group).ravel()
    else:
        gt_index, dt_index = _pairs(groups, sizes, iou_start)
        for first in range(0, len(ious), PAIRS_PER_CHUNK):
            chunk = slice(first, first + PAIRS_PER_CHUNK)
            ious[chunk] = keypoint_oks(gt, dt, gt_index[chunk], dt_index[chunk])
    return ious, iou_start


def _mask_ious(gt: GroundTruth, dt: Detections, gt_rows: np.ndarray, dt_rows: np.ndarray) -> np.ndarray:
    """[D, G] mask IoU by pycocotools' C code (crowd GT: intersection over the detection's area)."""
    crowd = [int(c) for c in gt.crowd[gt_rows]]
    return mask_utils.iou([dt.masks[i] for i in dt_rows], [gt.masks[i] for i in gt_rows], crowd)


def _pairs(groups: Groups, sizes: np.ndarray, iou_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(GT index [P], detection index [P]) of every entry of the flat IoU buffer."""
    nonempty = np.flatnonzero(sizes)
    group = np.repeat(nonempty, sizes[nonempty])  # [P] the group of each buffer entry
    local = np.arange(len(group)) - iou_start[group]  # position in the group's row-major [D, G]
    num_gt = groups.gt_stop[group] - groups.gt_start[group]
    gt_index = groups.gt_rows[groups.gt_start[group] + local % num_gt]
    dt_index = groups.dt_rows[groups.dt_start[group] + local // num_gt]
    return gt_index, dt_index


def keypoint_oks(gt: GroundTruth, dt: Detections, gt_index: np.ndarray, dt_index: np.ndarray) -> np.ndarray:
    """[P] OKS of detection ``dt_index[p]`` against GT ``gt_index[p]``, as ``computeOks`` computes it.

    Against a GT with labelled keypoints (v > 0), only those count; against one without, every
    detected point counts its distance to the box three times the GT box's size, centred on it.
    Same element-wise operations as pycocotools, so the same bits; the sums run over C-contiguous
    rows holding just the counted keypoints, so ``np.sum`` adds them in pycocotools' order too.
    """
    g, d = gt.keypoints[gt_index], dt.keypoints[dt_index]  # [P, 3 * 17]
    xg, yg, labelled = g[:, 0::3], g[:, 1::3], g[:, 2::3] > 0  # [P, 17]
    xd, yd = d[:, 0::3], d[:, 1::3]
    x, y, w, h = (column[:, None] for column in gt.boxes[gt_index].T)  # [P, 1]
    counted = labelled.sum(axis=1)  # [P]
    near = counted[:, None] > 0
    dx = np.where(near, xd - xg, np.maximum(0, (x - w) - xd) + np.maximum(0, xd - (x + w * 2)))
    dy = np.where(near, yd - yg, np.maximum(0, (y - h) - yd) + np.maximum(0, yd - (y + h * 2)))
    area = gt.area[gt_index][:, None]
    similarity = np.exp(-((dx**2 + dy**2) / _KEYPOINT_VARIANCES / (area + np.spacing(1)) / 2))  # [P, 17]
    oks = np.empty(len(gt_index))
    unlabelled = counted == 0
    oks[unlabelled] = np.sum(np.ascontiguousarray(similarity[unlabelled]), axis=1) / similarity.shape[1]
    for k in np.unique(counted[~unlabelled]):
        rows = counted == k
        kept = similarity[rows][labelled[rows]].reshape(-1, k)  # row-major: each row's keypoints in order
        oks[rows] = np.sum(kept, axis=1) / k
    return oks
