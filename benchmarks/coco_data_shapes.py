"""Masks and keypoints for the synthetic COCO data of ``coco_synthetic``, derived from each box.

GT masks are polygons (sometimes two parts); crowd GT are uncompressed RLE, as in COCO's own files;
detections are compressed RLE, as detectors write them. Keypoints are 17 points per object, placed
at fixed relative positions in the box with visibility flags; detections move them with noise.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from visionflow.evaluation.coco_input import NUM_KEYPOINTS


def add_masks(gt: dict, records: list[dict], rng: np.random.Generator, adversarial: bool) -> None:
    """Give every GT annotation and every detection a ``segmentation``, in place."""
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    for ann in gt["annotations"]:
        polygons = _polygons(rng, ann["bbox"], parts=1 + int(rng.random() < 0.2))
        if ann["iscrowd"]:
            ann["segmentation"] = _uncompressed_rle(ann["bbox"], *sizes[ann["image_id"]])
        elif adversarial and rng.random() < 0.2:
            ann["segmentation"] = _compressed_rle(polygons, *sizes[ann["image_id"]])
        else:
            ann["segmentation"] = polygons
    for record in records:
        polygons = _polygons(rng, record["bbox"], parts=1)
        record["segmentation"] = _compressed_rle(polygons, *sizes[record["image_id"]])
    if adversarial and rng.random() < 0.5:  # results without boxes: loadRes takes the mask's area
        for record in records:
            del record["bbox"]


def _polygons(rng: np.random.Generator, box: list[float], parts: int) -> list[list[float]]:
    """``parts`` roughly elliptic polygons (6 to 14 vertices) filling the XYWH ``box``."""
    x, y, w, h = box
    polygons = []
    for part in range(parts):
        n = int(rng.integers(6, 15))
        angles = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 0.3, n)
        radius = rng.uniform(0.85, 1.0, n) / parts
        cx = x + w * (part + 0.5) / parts
        px = cx + np.cos(angles) * radius * w / 2
        py = y + h / 2 + np.sin(angles) * radius * h / 2
        polygons.append(np.round(np.stack([px, py], axis=1).ravel(), 2).tolist())
    return polygons


def _compressed_rle(polygons: list[list[float]], height: int, width: int) -> dict:
    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _uncompressed_rle(box: list[float], height: int, width: int) -> dict:
    """COCO's crowd format for the ellipse in ``box``: run lengths of the column-major mask,
    starting with a run of zeros."""
    x, y, w, h = box
    rows, columns = np.mgrid[0:height, 0:width] + 0.5
    inside = ((columns - x - w / 2) / max(w / 2, 1e-6)) ** 2 + (
        (rows - y - h / 2) / max(h / 2, 1e-6)
    ) ** 2 <= 1
    flat = inside.ravel(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    return {"size": [height, width], "counts": ([0] + counts) if flat[0] else counts}


def add_keypoints(
    gt: dict, records: list[dict], rng: np.random.Generator, adversarial: bool
) -> None:
    """Give every GT annotation ``keypoints`` and ``num_keypoints``, and every detection keypoints."""
    layout = rng.uniform(0.05, 0.95, (NUM_KEYPOINTS, 2))  # relative positions in the box
    for ann in gt["annotations"]:
        x, y, w, h = ann["bbox"]
        visibility = rng.choice([0, 1, 2], size=NUM_KEYPOINTS, p=[0.3, 0.2, 0.5])
        if adversarial and rng.random() < 0.1:
            visibility[:] = 0  # no visible keypoint: OKS falls back to the distance to the box
        points = np.stack([x + layout[:, 0] * w, y + layout[:, 1] * h], axis=1)
        points = np.round(np.where(visibility[:, None] > 0, points, 0.0), 2)
        ann["keypoints"] = np.column_stack([points, visibility]).ravel().tolist()
        ann["num_keypoints"] = int(np.count_nonzero(visibility))
    for record in records:
        x, y, w, h = record["bbox"]
        noise = rng.normal(0.0, 0.02, (NUM_KEYPOINTS, 2)) * [max(w, 1), max(h, 1)]
        points = np.stack([x + layout[:, 0] * w, y + layout[:, 1] * h], axis=1) + noise
        flags = np.ones(NUM_KEYPOINTS)
        record["keypoints"] = np.round(np.column_stack([points, flags]), 2).ravel().tolist()
    if (
        adversarial and rng.random() < 0.5
    ):  # results without boxes: loadRes takes the keypoints' extent
        for record in records:
            del record["bbox"]
