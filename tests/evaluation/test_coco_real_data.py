"""visionflow against pycocotools on real COCO-format files (see ../shared/data/README.md).

- panopticapi_sample: a real COCO instances file (2 val2017 photos, 50 RLE masks, 3 crowd regions,
  133 categories, an annotation with id 0); it has no results, so the detections are made from
  its GT: jittered boxes, masks of other objects as false positives, wrong labels, tied scores.
- faster_coco_eval: a small GT + results pair with polygon masks, from faster-coco-eval's tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.coco_reference import pycocotools_evaluate
from visionflow.errors import DataError
from visionflow.evaluation.coco import evaluate_coco

DETECTION_DATA = Path(__file__).resolve().parents[2] / "../shared/data/detection"
PANOPTIC_GT = DETECTION_DATA / "panopticapi_sample" / "panoptic_coco_detection_format.json"
FASTER_COCO_EVAL = DETECTION_DATA / "faster_coco_eval"


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real test data {path.resolve()} is absent")
    return path


def assert_same_as_pycocotools(gt_path: Path, dt_path: Path, iou_type: str) -> None:
    ours = evaluate_coco(gt_path, dt_path, iou_type)
    reference = pycocotools_evaluate(gt_path, dt_path, iou_type)
    np.testing.assert_allclose(ours.stats, reference.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.precision, reference.precision, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.recall, reference.recall, rtol=0, atol=1e-9)


def detections_from_gt(gt: dict, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    category_ids = [c["id"] for c in gt["categories"]]
    by_image: dict[int, list[dict]] = {}
    for ann in gt["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    detections = []
    for anns in by_image.values():
        for ann in anns:
            x, y, w, h = ann["bbox"]
            jitter = rng.normal(0, 0.1, 4) * [w, h, w, h]
            other = anns[
                rng.integers(len(anns))
            ]  # the mask of another object: usually a false positive
            detections.append(
                {
                    "image_id": ann["image_id"],
                    "category_id": ann["category_id"]
                    if rng.random() < 0.85
                    else int(rng.choice(category_ids)),
                    "bbox": [
                        x + jitter[0],
                        y + jitter[1],
                        max(w + jitter[2], 1.0),
                        max(h + jitter[3], 1.0),
                    ],
                    "segmentation": ann["segmentation"]
                    if rng.random() < 0.7
                    else other["segmentation"],
                    "score": round(float(rng.random()), 1),  # coarse scores: many ties
                }
            )
    return detections


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("seed", range(3))
def test_panopticapi_sample(tmp_path, iou_type, seed):
    """The file numbers its annotations from 0, which the checks refuse (pycocotools miscounts a
    match to id 0); renumbered from 1, it is scored exactly as pycocotools scores it."""
    gt = json.loads(require(PANOPTIC_GT).read_text())
    with pytest.raises(DataError, match="annotation id 0"):
        evaluate_coco(PANOPTIC_GT, [], iou_type)
    for annotation in gt["annotations"]:
        annotation["id"] += 1
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "detections.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(detections_from_gt(gt, seed)))
    assert_same_as_pycocotools(gt_path, dt_path, iou_type)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_faster_coco_eval_pair(iou_type):
    folder = require(FASTER_COCO_EVAL)
    assert_same_as_pycocotools(folder / "gt_dataset.json", folder / "dt_dataset.json", iou_type)
