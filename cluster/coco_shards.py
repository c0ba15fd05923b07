"""COCO scoring with the per-image matching spread over Ray tasks (``eval coco --shards N``).

    result = evaluate_coco_on_ray("instances_val.json", "detections.json", "bbox", shards=8)

The driver loads the ground truth and the detections once and puts them in Ray's object store
(numpy arrays: workers on this node read them without a copy); each task matches one range of
images (:func:`visionflow.metrics.coco_match.match`); the driver joins the ranges in image order
and accumulates once. The result equals :func:`visionflow.metrics.evaluate_coco` bit for bit.
"""

from __future__ import annotations

from pathlib import Path

from visionflow.cluster.local import embedded_ray
from visionflow.metrics.coco import CocoResult, evaluate_coco_in_shards
from visionflow.metrics.coco_data import Detections, GroundTruth
from visionflow.metrics.coco_match import Matches, match
from visionflow.metrics.coco_params import CocoParams


def evaluate_coco_on_ray(gt: dict | str | Path, dt: list | str | Path, iou_type: str = "bbox",
                         shards: int = 2, workers: int | None = None) -> CocoResult:
    """:func:`visionflow.metrics.evaluate_coco` with the matching in ``shards`` Ray tasks, on the
    Ray this process is connected to or an embedded local one."""
    with embedded_ray():
        return evaluate_coco_in_shards(gt, dt, iou_type, shards, run_shards=match_on_ray,
                                       workers=workers)


def match_on_ray(gt: GroundTruth, detections: Detections, params: CocoParams,
                 ranges: list[range]) -> list[Matches]:
    """One Ray task (one CPU) per image range; the results in range order."""
    import ray

    gt_ref, detections_ref = ray.put(gt), ray.put(detections)
    task = ray.remote(match_images).options(num_cpus=1)
    return ray.get([task.remote(gt_ref, detections_ref, params, images) for images in ranges])


def match_images(gt: GroundTruth, detections: Detections, params: CocoParams,
                 images: range) -> Matches:
    return match(gt, detections, params, 1, images)
