"""COCO evaluation with the images split into shards: match each shard apart, merge, accumulate once.

    result = evaluate_coco_in_shards("instances_val.json", "detections.json", "bbox", shards=4)

The driver checks the inputs once and cuts the sorted image ids into ``shards`` consecutive
ranges; each shard (:func:`match_shard`) feeds its images, their GT and their detections to a
hotcoco ``StreamingEval``, which matches them and returns its state as bytes; the driver merges
the states in shard order and accumulates once. Matching is per image, so the result equals
:func:`visionflow.evaluation.coco.evaluate_coco` bit for bit (tests/evaluation/test_coco_shards.py).
``run_shards`` runs the shards: one after another here by default; ``visionflow.cluster`` runs them
as Ray tasks (``visionflow eval coco --shards N``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionflow.errors import DataError
from visionflow.evaluation.coco import CocoResult, result_of
from visionflow.evaluation.coco_input import (
    AnnotationColumns,
    GroundTruth,
    load_ground_truth,
)
from visionflow.evaluation.coco_results import Results, load_results


@dataclass(frozen=True)
class Shard:
    """What one shard needs, as plain data that pickles: its images, GT annotations (columns for
    boxes, dicts for masks and keypoints), detections (the ``[N, 7]`` columns, or result dicts)
    and the custom OKS ``keypoint_sigmas`` [K] (None: COCO's)."""

    iou_type: str
    categories: list[dict[str, Any]]
    images: list[dict[str, Any]]
    annotations: AnnotationColumns | list[dict[str, Any]]
    detections: Any
    keypoint_sigmas: tuple[float, ...] | None = None

    def annotation_dicts(self) -> list[dict[str, Any]]:
        """The GT annotations as hotcoco's ``StreamingEval`` takes them: built here, in the
        shard's own process, so that the driver never holds a dict per annotation."""
        annotations = self.annotations
        return annotations.as_dicts() if isinstance(annotations, AnnotationColumns) else annotations


#: ``run_shards(shards) -> [StreamingEval state bytes]``, one per shard, in shard order
ShardRunner = Callable[[list[Shard]], list[bytes]]


def match_shard(shard: Shard) -> bytes:
    """Match one shard's images; hotcoco's ``StreamingEval`` state as bytes."""
    import hotcoco

    params = None
    if shard.keypoint_sigmas is not None:
        params = hotcoco.Params(shard.iou_type)
        params.kpt_oks_sigmas = list(shard.keypoint_sigmas)
    evaluator = hotcoco.StreamingEval(shard.categories, shard.iou_type, params=params)
    evaluator.update(shard.images, shard.annotation_dicts(), shard.detections)
    return evaluator.to_bytes()


def run_here(shards: list[Shard]) -> list[bytes]:
    return [match_shard(shard) for shard in shards]


def evaluate_coco_in_shards(
    gt: dict | str | Path,
    dt: list | str | Path,
    iou_type: str = "bbox",
    shards: int = 2,
    run_shards: ShardRunner = run_here,
    keypoint_sigmas: Sequence[float] | None = None,
) -> CocoResult:
    """:func:`~visionflow.evaluation.coco.evaluate_coco` (COCO protocol, custom OKS
    ``keypoint_sigmas`` [K] as there) with the per-image matching in ``shards`` parts run by
    ``run_shards``; the same result."""
    import hotcoco

    if shards < 1:
        raise DataError(f"--shards: must be >= 1, got {shards}")
    started = time.perf_counter()
    ground_truth = load_ground_truth(gt, iou_type, keypoint_sigmas=keypoint_sigmas)
    shards = min(shards, max(1, len(ground_truth.image_ids)))  # more would hold no image
    parts = split(ground_truth, load_results(dt, ground_truth), shards)
    split_at = time.perf_counter()
    states = run_shards(parts)
    matched = time.perf_counter()
    engine = hotcoco.StreamingEval.merge(
        [hotcoco.StreamingEval.from_bytes(state) for state in states]
    ).finalize()
    engine.accumulate()
    timing = {
        "load_split_s": split_at - started,
        "match_s": matched - split_at,
        "accumulate_s": time.perf_counter() - matched,
    }
    return result_of(engine, ground_truth.category_table(), "coco", timing)


def split(gt: GroundTruth, results: Results, shards: int) -> list[Shard]:
    """``shards`` consecutive ranges of the sorted image ids, each with its GT and detections."""
    import msgspec

    bounds = np.linspace(0, len(gt.image_ids), shards + 1).round().astype(np.int64)
    ann_shard = _shard_of(gt.image_ids, bounds, gt.annotations.image_ids)
    detection_shard = _shard_of(gt.image_ids, bounds, results.image_ids)
    images_by_id = {int(image["id"]): image for image in gt.images}
    parts = []
    for index in range(shards):
        ids = gt.image_ids[bounds[index] : bounds[index + 1]].tolist()
        rows = np.flatnonzero(ann_shard == index)
        annotations = (
            gt.annotations.take(rows)
            if gt.records is None
            else msgspec.to_builtins([gt.records[i] for i in rows])
        )
        chosen = np.flatnonzero(detection_shard == index)
        detections = (
            results.columns[chosen]
            if results.records is None
            else msgspec.to_builtins([results.records[i] for i in chosen])
        )
        parts.append(
            Shard(
                gt.iou_type,
                gt.categories,
                [images_by_id[i] for i in ids],
                annotations,
                detections,
                gt.keypoint_sigmas,
            )
        )
    return parts


def _shard_of(
    sorted_image_ids: np.ndarray, bounds: np.ndarray, image_ids: np.ndarray
) -> np.ndarray:
    """[N] shard index of each of ``image_ids``: shard i holds positions ``bounds[i]:bounds[i + 1]``."""
    return np.searchsorted(bounds[1:-1], np.searchsorted(sorted_image_ids, image_ids), side="right")
