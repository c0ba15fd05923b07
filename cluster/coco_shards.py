"""COCO scoring with the per-image matching spread over Ray tasks (``eval coco --shards N``).

    result = evaluate_coco_on_ray("instances_val.json", "detections.json", "bbox", shards=8)

The driver checks the ground truth and the detections once and cuts the images into ``shards``
parts (:func:`visionflow.evaluation.coco_shards.split`); each Ray task (one CPU) matches one part
with hotcoco and returns its state; the driver merges the states in shard order and accumulates
once. The result equals :func:`visionflow.evaluation.coco.evaluate_coco` bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from visionflow.cluster.local import embedded_ray
from visionflow.evaluation.coco import CocoResult
from visionflow.evaluation.coco_shards import Shard, evaluate_coco_in_shards, match_shard


def evaluate_coco_on_ray(
    gt: dict | str | Path,
    dt: list | str | Path,
    iou_type: str = "bbox",
    shards: int = 2,
    keypoint_sigmas: Sequence[float] | None = None,
) -> CocoResult:
    """:func:`evaluate_coco_in_shards` (custom OKS ``keypoint_sigmas`` [K] as there) with one Ray
    task per shard, on the Ray this process is connected to (``--address``) or an embedded local
    one."""
    with embedded_ray():
        return evaluate_coco_in_shards(
            gt, dt, iou_type, shards, match_on_ray, keypoint_sigmas=keypoint_sigmas
        )


def match_on_ray(shards: list[Shard]) -> list[bytes]:
    """One Ray task (one CPU) per shard; their states in shard order."""
    import ray

    task = ray.remote(match_shard).options(num_cpus=1)
    return ray.get([task.remote(shard) for shard in shards])
