"""COCO box (and mask) mAP of a detection task, from its detections and the batches' own targets.

    evaluator = DetectionEvaluator(category_ids=[1, 2, 3], class_names=["a", "b", "c"])
    evaluator.process(detections, entries)   # per batch: model outputs, ground_truth_entry(...)s
    evaluation = evaluator.evaluate()        # metrics mAP, AP50, ...; details: the CocoResult

With ``iou_types=("bbox", "segm")`` (instance segmentation) the detections also carry masks
(``masks`` or ``rles``, see :mod:`~visionflow.evaluation.coco_predictions`), the entries their
targets' masks as RLE, and the same statistics of the masks are added as ``mask_mAP``,
``mask_AP50``, ...; ``details`` is then ``{iou_type: CocoResult}``. With ``"keypoints"`` (pose)
the detections carry ``keypoints`` [N, K, 3] and the entries their targets' keypoints, scored by
OKS with the ``keypoint_sigmas`` [K] of the data (``COCO_SIGMAS`` for COCO's 17 person keypoints):
``kp_mAP kp_AP50 kp_AP75 kp_APm kp_APl kp_AR20``. Bad sigmas (not K finite positive numbers) raise
a SpecError naming ``keypoint_sigmas``; the ground truth and the detections go through the same
checks as ``evaluate_coco``'s files, with K keypoints each.

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
from visionflow.evaluation.coco_checks import COCO_SIGMAS, checked_sigmas

#: logged metric -> index in pycocotools' 12 bbox stats
LOGGED_STATS = {"mAP": 0, "AP50": 1, "AP75": 2, "APs": 3, "APm": 4, "APl": 5, "AR100": 8}
#: logged metric -> index in pycocotools' 10 keypoints stats
KEYPOINT_STATS = {"mAP": 0, "AP50": 1, "AP75": 2, "APm": 3, "APl": 4, "AR20": 5}
#: iou type -> prefix of its logged metrics
METRIC_PREFIX = {"bbox": "", "segm": "mask_", "keypoints": "kp_"}


class DetectionEvaluator:
    """Scores detections ``{"boxes" [N, 4] XYXY pixels, "scores" [N], "labels" [N] contiguous}``
    against ground-truth entries (:func:`ground_truth_entry`), one pair per image.

    An image seen again (DDP pads a split with repeated images so every rank gets as many) counts
    once, with its first detections: the score is that of the dataset, not of the padding."""

    def __init__(
        self,
        category_ids: Sequence[int],
        class_names: Sequence[str],
        iou_types: Sequence[str] = ("bbox",),
        keypoint_sigmas: Sequence[float] = COCO_SIGMAS,
    ):
        self.category_ids = list(category_ids)
        self.class_names = list(class_names)
        self.iou_types = tuple(iou_types)
        self.keypoint_sigmas = checked_sigmas(keypoint_sigmas)
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
        """``mAP AP50 AP75 APs APm APl AR100`` (those defined for the data), prefixed per iou type
        (``METRIC_PREFIX``); ``details`` the ``CocoResult`` (one iou type) or them by iou type."""
        from visionflow.evaluation.coco import evaluate_coco
        from visionflow.evaluation.coco_input import load_ground_truth

        ground_truth = coco_dataset(
            list(self._entries.values()), self.category_ids, self.class_names
        )
        metrics, results = {}, {}
        for iou_type in self.iou_types:
            sigmas = self.keypoint_sigmas if iou_type == "keypoints" else None
            checked = load_ground_truth(ground_truth, iou_type, keypoint_sigmas=sigmas)
            result = evaluate_coco(checked, self._results(iou_type), iou_type=iou_type)
            logged = KEYPOINT_STATS if iou_type == "keypoints" else LOGGED_STATS
            metrics.update(
                {
                    METRIC_PREFIX[iou_type] + name: float(result.stats[index])
                    for name, index in logged.items()
                    if result.stats[index] > -1
                }
            )
            results[iou_type] = result
        details = results if len(results) > 1 else results[self.iou_types[0]]
        return Evaluation(metrics, len(self._entries), details)

    def _results(self, iou_type: str) -> list[dict[str, Any]]:
        return [
            result
            for image_id, detection in self._detections
            for result in self.results_of(detection, image_id, iou_type)
        ]

    def results_of(
        self, detection: dict[str, Any], image_id: int, iou_type: str | None = None
    ) -> list[dict[str, Any]]:
        """COCO result dicts of one image's detection; ``iou_type`` defaults to the last of
        ``iou_types`` (its results also hold the boxes)."""
        from visionflow.evaluation.coco_predictions import results_from_prediction

        return results_from_prediction(
            detection,
            image_id,
            dict(enumerate(self.category_ids)),
            iou_type or self.iou_types[-1],
            f"image {image_id}",
            len(self.keypoint_sigmas),
        )


def ground_truth_entry(
    target: DetectionTarget,
    size: Any,
    category_ids: list[int],
    with_masks: bool = False,
    with_keypoints: bool = False,
) -> dict[str, Any]:
    """One image of the COCO ground truth (boxes XYWH, dataset category ids, and with
    ``with_masks`` the target's masks as RLE, with ``with_keypoints`` its keypoints and their
    ``num_keypoints``), ids still unset."""
    from visionflow.evaluation.coco_predictions import encode_masks

    boxes = target.boxes.detach().cpu().double()
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
    area = target.area.tolist() if target.area is not None else [w * h for _, _, w, h in xywh]
    crowd = target.iscrowd.tolist() if target.iscrowd is not None else [False] * len(xywh)
    labels = target.labels.tolist()
    annotations = [
        {
            "image_id": int(target.image_id),
            "category_id": category_ids[label],
            "bbox": box,
            "area": float(a),
            "iscrowd": int(c),
        }
        for label, box, a, c in zip(labels, xywh, area, crowd)
    ]
    if with_masks:
        for annotation, rle in zip(annotations, encode_masks(target.masks.cpu().numpy())):
            annotation["segmentation"] = rle
    if with_keypoints:
        keypoints = target.keypoints.detach().cpu().double()  # [N, K, 3]
        for annotation, points in zip(annotations, keypoints):
            annotation["keypoints"] = points.reshape(-1).tolist()
            annotation["num_keypoints"] = int((points[:, 2] > 0).sum())
    return {
        "image": {"id": int(target.image_id), "height": int(size[0]), "width": int(size[1])},
        "annotations": annotations,
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
