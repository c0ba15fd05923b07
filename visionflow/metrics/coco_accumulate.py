"""pycocotools' ``accumulate`` (precision/recall tables) and ``summarize`` (the 12 or 10 stats)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visionflow.metrics.coco_kernels import accumulate_categories
from visionflow.metrics.coco_match import Matches
from visionflow.metrics.coco_parallel import run_chunks
from visionflow.metrics.coco_params import IOU_THRESHOLDS, RECALL_THRESHOLDS, CocoParams


@dataclass(frozen=True)
class Tables:
    """``COCOeval.eval``: precision and scores [T, R, K, A, M], recall [T, K, A, M]; -1 where a
    category has no GT to count in an area range."""

    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray


def accumulate(matches: Matches, params: CocoParams, num_categories: int, workers: int) -> Tables:
    shape = (len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), num_categories, len(params.area_ranges),
             len(params.max_dets))
    precision, scores = -np.ones(shape), -np.ones(shape)
    recall = -np.ones((shape[0],) + shape[2:])
    curves_per_category = len(IOU_THRESHOLDS) * len(params.area_ranges) * len(params.max_dets)
    work = (np.diff(matches.category_start) + 1) * curves_per_category  # [K] detections visited
    run_chunks(accumulate_categories, work, workers, matches.category_start, matches.scores,
               matches.ranks, matches.states, matches.num_positives, np.array(params.max_dets, dtype=np.int64),
               RECALL_THRESHOLDS, precision, recall, scores)
    return Tables(precision, recall, scores)


@dataclass(frozen=True)
class StatSetting:
    """One line of pycocotools' summary: AP or AR, at one IoU (None: mean over .50:.95), area, maxDets."""

    average_precision: bool
    iou: float | None
    area: str
    max_dets: int


def stat_settings(params: CocoParams) -> list[StatSetting]:
    """The 12 detection stats ([10] for keypoints), in pycocotools' order (``params.stat_names``)."""
    if params.iou_type == "keypoints":
        return [StatSetting(ap, iou, area, 20) for ap in (True, False)
                for iou, area in ((None, "all"), (.5, "all"), (.75, "all"), (None, "medium"), (None, "large"))]
    one, ten, hundred = params.max_dets
    precision = [StatSetting(True, iou, area, hundred) for iou, area in
                 ((None, "all"), (.5, "all"), (.75, "all"), (None, "small"), (None, "medium"), (None, "large"))]
    recall = [StatSetting(False, None, "all", m) for m in (one, ten, hundred)]
    recall += [StatSetting(False, None, area, hundred) for area in ("small", "medium", "large")]
    return precision + recall


def summarize(tables: Tables, params: CocoParams) -> np.ndarray:
    """``COCOeval.summarize``: per setting, the mean of the table entries > -1, or -1 if none."""
    return np.array([_summarize(tables, params, setting) for setting in stat_settings(params)])


def _summarize(tables: Tables, params: CocoParams, setting: StatSetting) -> float:
    a = [i for i, label in enumerate(params.area_labels) if label == setting.area]
    m = [i for i, value in enumerate(params.max_dets) if value == setting.max_dets]
    table = tables.precision if setting.average_precision else tables.recall
    if setting.iou is not None:
        table = table[np.where(setting.iou == IOU_THRESHOLDS)[0]]
    table = table[..., a, m]  # pycocotools indexes [..., aind, mind] with two lists, in this order
    return -1.0 if len(table[table > -1]) == 0 else float(np.mean(table[table > -1]))


def per_category_ap(tables: Tables, iou: float | None = None) -> np.ndarray:
    """[K] AP of each category (area 'all', the largest maxDets) over the IoU thresholds, or at
    ``iou``; NaN for a category without GT (detectron2's convention)."""
    precision = tables.precision[..., 0, -1]  # [T, R, K]
    if iou is not None:
        precision = precision[np.where(iou == IOU_THRESHOLDS)[0]]
    per_category = np.moveaxis(precision, 2, 0)  # [K, T, R]
    return np.array([np.mean(p[p > -1]) if (p > -1).any() else np.nan for p in per_category])
