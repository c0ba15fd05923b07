"""pycocotools' ``evaluate`` step: group by (category, image), compute IoUs, match greedily.

1. Sort GT by (category, image), keeping file order, and detections by (category, image, -score)
   with a stable sort (pycocotools' mergesort on -score); keep each group's first maxDets[-1].
2. IoU of every group into one flat buffer (``coco_iou``).
3. The matching kernel gives each kept detection a state (true positive, false positive, ignored)
   per area range and IoU threshold: everything ``accumulate`` needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visionflow.metrics.coco_data import Detections, GroundTruth
from visionflow.metrics.coco_iou import compute_ious
from visionflow.metrics.coco_kernels import match_groups
from visionflow.metrics.coco_parallel import run_chunks
from visionflow.metrics.coco_params import IOU_THRESHOLDS, CocoParams


@dataclass(frozen=True)
class Groups:
    """(category, image) pairs with any GT or kept detection, sorted; row ranges into the sorted rows.

    ``gt_rows`` [G'] and ``dt_rows`` [N'] index the loaded GT and detections in group order;
    ``dt_rank`` [N'] is each detection's rank by score within its group (< maxDets[-1]);
    ``category_start`` [K + 1] bounds each category's detection rows.
    """

    gt_rows: np.ndarray
    dt_rows: np.ndarray
    dt_rank: np.ndarray
    gt_start: np.ndarray
    gt_stop: np.ndarray
    dt_start: np.ndarray
    dt_stop: np.ndarray
    category_start: np.ndarray

    @property
    def iou_sizes(self) -> np.ndarray:
        """[P] entries of each group's IoU matrix (D * G)."""
        return (self.dt_stop - self.dt_start) * (self.gt_stop - self.gt_start)


def make_groups(gt: GroundTruth, dt: Detections, max_det: int) -> Groups:
    """Group GT and detections by (category, image); keep each group's ``max_det`` best detections."""
    num_images = len(gt.image_ids)
    gt_keys = gt.category_index * num_images + gt.image_index
    gt_rows = np.argsort(gt_keys, kind="stable")
    gt_keys = gt_keys[gt_rows]
    dt_keys = dt.category_index * num_images + dt.image_index
    dt_order = np.lexsort((-dt.scores, dt_keys))
    dt_keys = dt_keys[dt_order]
    rank = np.arange(len(dt_keys)) - np.searchsorted(dt_keys, dt_keys, side="left")
    keep = rank < max_det
    dt_keys = dt_keys[keep]
    present = np.zeros(len(gt.category_ids) * num_images, dtype=bool)  # np.union1d sorts: 20x slower
    present[gt_keys] = True
    present[dt_keys] = True
    group_keys = np.flatnonzero(present)
    category_bounds = np.arange(len(gt.category_ids) + 1) * num_images
    return Groups(gt_rows, dt_order[keep], rank[keep],
                  np.searchsorted(gt_keys, group_keys, "left"), np.searchsorted(gt_keys, group_keys, "right"),
                  np.searchsorted(dt_keys, group_keys, "left"), np.searchsorted(dt_keys, group_keys, "right"),
                  np.searchsorted(dt_keys, category_bounds, "left"))


@dataclass(frozen=True)
class Matches:
    """Per kept detection [N'] in group order: score, rank in its group, and ``states`` [N', A, T]
    (see ``coco_kernels``); per category and area range, the GT that count (``num_positives`` [K, A])."""

    scores: np.ndarray
    ranks: np.ndarray
    states: np.ndarray
    category_start: np.ndarray
    num_positives: np.ndarray


def match(gt: GroundTruth, dt: Detections, params: CocoParams, workers: int) -> Matches:
    """Everything pycocotools' ``evaluate`` computes that its ``accumulate`` reads."""
    groups = make_groups(gt, dt, max(params.max_dets))
    ious, iou_start = compute_ious(gt, dt, groups, workers)
    states = np.empty((len(groups.dt_rows), len(params.area_ranges), len(IOU_THRESHOLDS)), dtype=np.uint8)
    gt_rows, dt_rows = groups.gt_rows, groups.dt_rows
    cost = groups.iou_sizes + (groups.dt_stop - groups.dt_start)
    run_chunks(match_groups, cost, workers, groups.gt_start, groups.gt_stop, groups.dt_start, groups.dt_stop,
               iou_start, ious, gt.area[gt_rows], gt.ignore[gt_rows], gt.crowd[gt_rows], gt.ann_ids[gt_rows] != 0,
               dt.area[dt_rows], params.area_ranges, IOU_THRESHOLDS, states)
    return Matches(dt.scores[dt_rows], groups.dt_rank, states, groups.category_start,
                   _num_positives(gt, params))


def _num_positives(gt: GroundTruth, params: CocoParams) -> np.ndarray:
    """[K, A] GT that are neither ignored nor outside the area range (pycocotools' ``npig``)."""
    counts = np.zeros((len(gt.category_ids), len(params.area_ranges)), dtype=np.int64)
    for a, (low, high) in enumerate(params.area_ranges):
        counted = ~gt.ignore & (gt.area >= low) & (gt.area <= high)
        counts[:, a] = np.bincount(gt.category_index[counted], minlength=len(gt.category_ids))
    return counts
