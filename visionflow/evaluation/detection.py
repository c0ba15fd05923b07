"""COCO box mAP of a detection task, from its detections and the batches' own targets.

    evaluator = DetectionEvaluator(category_ids=[1, 2, 3], class_names=["a", "b", "c"])
    evaluator.process(detections, entries)   # per batch: model outputs, ground_truth_entry(...)s
    evaluation = evaluator.evaluate()        # metrics mAP, AP50, ...; details: the CocoResult

The ground truth is built from what the datamodule yields (boxes become COCO XYWH, labels become
``category_ids``, crowd regions are ignored as in COCO), so any detection dataset is scored the
same way, and the same code scores the task's validation epochs, its test loop and the sharded
``evaluate`` stage (:mod:`visionflow.evaluation`). A metric undefined for the data (pycocotools'
-1, e.g. APl without a large object) is left out rather than logged as -1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from visionflow.batches import DetectionTarget
from visionflow.evaluation import Evaluation

#: logged metric -> index in pycocotools' 12 bbox stats
LOGGED_STATS = {"mAP": 0, "AP50": 1, "AP75": 2, "APs": 3, "APm": 4, "APl": 5, "AR100": 8}


class DetectionEvaluator:
    """Scores detections ``{"boxes" [N, 4] XYXY pixels, "scores" [N], "labels" [N] contiguous}``
    against ground-truth entries (:func:`ground_truth_entry`), one pair per image.

    An image seen again (DDP pads a split with repeated images so every rank gets as many) counts
    once, with its first detections: the score is that of the dataset, not of the padding."""

    def __init__(self, category_ids: Sequence[int], class_names: Sequence[str]):
        self.category_ids = list(category_ids)
        self.class_names = list(class_names)
        self.reset()

    def reset(self) -> None:
        self._entries: dict[int, dict[str, Any]] = {}
        self._detections: list[tuple[int, dict[str, Any]]] = []

    def process(
        self, predictions: Sequence[dict[str, Any]], targets: Sequence[dict[str, Any]]
    ) -> None:
        for detection, entry in zip(predictions, targets, strict=True):
            image_id = entry["image"]["id"]
            if image_id not in self._entries:
                self._entries[image_id] = entry
                self._detections.append((image_id, detection))

    def evaluate(self) -> Evaluation:
        """``mAP AP50 AP75 APs APm APl AR100`` (those defined for the data); ``details`` the full
        ``CocoResult``."""
        from visionflow.evaluation.coco import evaluate_coco
        from visionflow.evaluation.coco_predictions import results_from_prediction

        labels = dict(enumerate(self.category_ids))
        results = [
            result
            for image_id, detection in self._detections
            for result in results_from_prediction(
                detection, image_id, labels, "bbox", f"image {image_id}"
            )
        ]
        ground_truth = coco_dataset(
            list(self._entries.values()), self.category_ids, self.class_names
        )
        result = evaluate_coco(ground_truth, results, iou_type="bbox")
        metrics = {
            name: float(result.stats[index])
            for name, index in LOGGED_STATS.items()
            if result.stats[index] > -1
        }
        return Evaluation(metrics, len(self._entries), result)


def ground_truth_entry(
    target: DetectionTarget, size: Any, category_ids: list[int]
) -> dict[str, Any]:
    """One image of the COCO ground truth (boxes XYWH, dataset category ids), ids still unset."""
    boxes = target.boxes.detach().cpu().double()
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
    area = target.area.tolist() if target.area is not None else [w * h for _, _, w, h in xywh]
    crowd = target.iscrowd.tolist() if target.iscrowd is not None else [False] * len(xywh)
    labels = target.labels.tolist()
    return {
        "image": {"id": int(target.image_id), "height": int(size[0]), "width": int(size[1])},
        "annotations": [
            {
                "image_id": int(target.image_id),
                "category_id": category_ids[label],
                "bbox": box,
                "area": float(a),
                "iscrowd": int(c),
            }
            for label, box, a, c in zip(labels, xywh, area, crowd)
        ],
    }


def coco_dataset(
    entries: list[dict[str, Any]], category_ids: list[int], class_names: list[str]
) -> dict[str, Any]:
    """A COCO ground-truth dict; an image seen twice (DDP padding) counts once."""
    images: dict[int, dict[str, Any]] = {}
    for entry in entries:
        images.setdefault(entry["image"]["id"], entry)
    annotations = [annotation for entry in images.values() for annotation in entry["annotations"]]
    return {
        "images": [entry["image"] for entry in images.values()],
        "annotations": [{"id": index, **a} for index, a in enumerate(annotations, 1)],
        "categories": [{"id": c, "name": n} for c, n in zip(category_ids, class_names)],
    }
