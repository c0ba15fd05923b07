"""pycocotools' ``evaluate`` step: group by (category, image), compute IoUs, match greedily.

1. Sort GT by (category, image), keeping file order, and detections by (category, image, -score)
   with a stable sort (pycocotools' mergesort on -score); keep each group's first maxDets[-1].
2. IoU of every group into one flat buffer (``coco_iou``).
3. The matching kernel gives each kept detection a state (true positive, false positive, ignored)
   per area range and IoU threshold: everything ``accumulate`` needs.

Matching is independent per image, so it shards: ``match(..., images=range(a, b))`` matches the
images with index ``a <= i < b`` only, and :func:`merge_matches` joins the shards' results, in
image order, into exactly what one ``match`` over every image gives.
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


def make_groups(gt: GroundTruth, dt: Detections, max_det: int, images: range | None = None) -> Groups:
    """Group GT and detections by (category, image); keep each group's ``max_det`` best detections.
    ``images``: only the images with these indices (default: all)."""
    num_images = len(gt.image_ids)
    gt_keys = gt.category_index * num_images + gt.image_index
    gt_rows = _in_images(np.argsort(gt_keys, kind="stable"), gt.image_index, images)
    gt_keys = gt_keys[gt_rows]
    dt_keys = dt.category_index * num_images + dt.image_index
    dt_order = _in_images(np.lexsort((-dt.scores, dt_keys)), dt.image_index, images)
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


def _in_images(rows: np.ndarray, image_index: np.ndarray, images: range | None) -> np.ndarray:
    """``rows`` whose image index is in ``images`` (order kept); all of them for None."""
    if images is None:
        return rows
    selected = image_index[rows]
    return rows[(selected >= images.start) & (selected < images.stop)]


@dataclass(frozen=True)
class Matches:
    """Per kept detection [N'] in group order: score, rank in its group, and ``states`` [N', A, T]
    (see ``coco_kernels``); per category and area range, the GT that count (``num_positives`` [K, A])."""

    scores: np.ndarray
    ranks: np.ndarray
    states: np.ndarray
    category_start: np.ndarray
    num_positives: np.ndarray


def match(gt: GroundTruth, dt: Detections, params: CocoParams, workers: int,
          images: range | None = None) -> Matches:
    """Everything pycocotools' ``evaluate`` computes that its ``accumulate`` reads, for the images
    with index in ``images`` (default: every image)."""
    groups = make_groups(gt, dt, max(params.max_dets), images)
    ious, iou_start = compute_ious(gt, dt, groups, workers)
    states = np.empty((len(groups.dt_rows), len(params.area_ranges), len(IOU_THRESHOLDS)), dtype=np.uint8)
    gt_rows, dt_rows = groups.gt_rows, groups.dt_rows
    cost = groups.iou_sizes + (groups.dt_stop - groups.dt_start)
    run_chunks(match_groups, cost, workers, groups.gt_start, groups.gt_stop, groups.dt_start, groups.dt_stop,
               iou_start, ious, gt.area[gt_rows], gt.ignore[gt_rows], gt.crowd[gt_rows], gt.ann_ids[gt_rows] != 0,
               dt.area[dt_rows], params.area_ranges, IOU_THRESHOLDS, states)
    return Matches(dt.scores[dt_rows], groups.dt_rank, states, groups.category_start,
                   _num_positives(gt, params, images))


def image_shards(gt: GroundTruth, dt: Detections, shards: int) -> list[range]:
    """Up to ``shards`` consecutive image-index ranges covering every image, balanced by the GT
    and detections each holds (the matching work)."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    num_images = len(gt.image_ids)
    work = np.cumsum(np.bincount(gt.image_index, minlength=num_images)
                     + np.bincount(dt.image_index, minlength=num_images) + 1)
    cuts = np.searchsorted(work, np.linspace(0, work[-1], shards + 1)[1:-1], side="right")
    bounds = np.unique(np.concatenate([[0], cuts, [num_images]])).tolist()
    return [range(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]


def merge_matches(shards: list[Matches]) -> Matches:
    """One ``Matches`` from those of consecutive image ranges (given in image order): each
    category's rows are the shards' rows of that category, shard after shard, which is the
    (category, image) order of a single ``match``."""
    num_categories = len(shards[0].category_start) - 1
    categories = np.concatenate([np.repeat(np.arange(num_categories), np.diff(m.category_start))
                                 for m in shards])
    order = np.argsort(categories, kind="stable")  # stable: shard order, then row order

    def joined(field: str) -> np.ndarray:
        return np.concatenate([getattr(m, field) for m in shards])[order]

    return Matches(joined("scores"), joined("ranks"), joined("states"),
                   np.searchsorted(categories[order], np.arange(num_categories + 1)),
                   sum(m.num_positives for m in shards))


def _num_positives(gt: GroundTruth, params: CocoParams, images: range | None) -> np.ndarray:
    """[K, A] GT (of ``images``) that are neither ignored nor outside the area range
    (pycocotools' ``npig``)."""
    counts = np.zeros((len(gt.category_ids), len(params.area_ranges)), dtype=np.int64)
    rows = _in_images(np.arange(len(gt.image_index)), gt.image_index, images)
    for a, (low, high) in enumerate(params.area_ranges):
        counted = rows[~gt.ignore[rows] & (gt.area[rows] >= low) & (gt.area[rows] <= high)]
        counts[:, a] = np.bincount(gt.category_index[counted], minlength=len(gt.category_ids))
    return counts
