"""Pose: Keypoint R-CNN trained on ``KeypointBatch``, scored with COCO box mAP and OKS keypoint mAP.

    task = KeypointDetectionTask(num_classes=1, keypoint_names=["nose", "left_eye", ...],
                                 net="keypointrcnn_resnet50_fpn")
    trainer.fit(task, datamodule)   # e.g. coco_keypoints (person_keypoints_*.json), shapes_keypoints

Everything of :class:`~visionflow.tasks.detection.ObjectDetectionTask`, with keypoints: the
targets' ``keypoints`` [N, K, 3] train the keypoint head (``train/loss_keypoint``; points of
visibility 0 do not count), ``forward`` adds ``keypoints`` [N, K, 3] and ``keypoints_scores``
[N, K] to each image's detections, validation and test log the box metrics and the OKS ones
(``val/kp_mAP val/kp_AP50 val/kp_AP75 val/kp_APm val/kp_APl val/kp_AR20``), prediction writes
keypoints in the results file, and overlays draw ground truth and predicted keypoints joined by
the ``skeleton`` in two colours. The checkpoint monitor is ``val/kp_mAP``.

``keypoint_names`` come from the data (their number K sizes the keypoint head; flips swap the
``left_``/``right_`` ones in the datamodule). OKS needs a sigma per keypoint (how far a point may
stray, relative to the object's size): ``keypoint_sigmas``, COCO's own for its 17 person
keypoints by default; other keypoint sets must give theirs.
"""

from __future__ import annotations

from typing import Any

from visionflow.batches import KeypointBatch
from visionflow.errors import SpecError
from visionflow.evaluation.coco_checks import COCO_SIGMAS, SIGMAS_HINT, checked_sigmas
from visionflow.evaluation.detection import DetectionEvaluator
from visionflow.registry import TASKS
from visionflow.tasks.detection import ObjectDetectionTask


@TASKS.register("keypoint_detection", batch=KeypointBatch)
class KeypointDetectionTask(ObjectDetectionTask):
    """Detect objects of ``num_classes`` classes and their ``keypoint_names`` with a Keypoint R-CNN
    (``net``). ``keypoint_sigmas`` [K]: OKS sigmas (default COCO's, for K=17); ``skeleton``:
    1-based keypoint pairs that overlays join (COCO's ``skeleton``). The other arguments are
    those of ``object_detection``."""

    checkpoint_monitor = ("val/kp_mAP", "max")
    predicts = "keypoints"
    iou_types = ("bbox", "keypoints")

    def __init__(
        self,
        num_classes: int,
        keypoint_names: list[str],
        keypoint_sigmas: list[float] | None = None,
        skeleton: list[list[int]] | None = None,
        net: str = "keypointrcnn_mobilenet_v3_large_fpn",
        **detection: Any,
    ):
        self.keypoint_sigmas = sigmas_of(keypoint_names, keypoint_sigmas)
        self.skeleton_pairs = checked_skeleton(skeleton, len(keypoint_names))
        super().__init__(num_classes, net=net, **detection)

    def net_settings(self) -> dict[str, Any]:
        return {"num_keypoints": len(self.keypoint_sigmas)}

    def skeleton(self) -> list[tuple[int, int]]:
        return self.skeleton_pairs

    def make_evaluator(self) -> DetectionEvaluator:
        """COCO box mAP and OKS keypoint mAP (with ``keypoint_sigmas``) against the targets."""
        return DetectionEvaluator(
            self.category_ids, self.class_names, self.iou_types, self.keypoint_sigmas
        )


def sigmas_of(names: list[str], sigmas: list[float] | None) -> tuple[float, ...]:
    """One finite positive OKS sigma per keypoint name; COCO's for 17 keypoints when not given."""
    if not names:
        raise SpecError("keypoint_names: a pose task needs at least one keypoint name")
    if sigmas is None:
        if len(names) != len(COCO_SIGMAS):
            raise SpecError(
                f"keypoint_sigmas: needed for {len(names)} keypoints (COCO's sigmas are for "
                f"its 17 person keypoints)",
                hint=SIGMAS_HINT,
            )
        return COCO_SIGMAS
    values = checked_sigmas(sigmas)
    if len(values) != len(names):
        raise SpecError(
            f"keypoint_sigmas: {len(values)} values for {len(names)} keypoint_names; "
            "need one sigma per keypoint name",
            hint="list them in the order of keypoint_names",
        )
    return values


def checked_skeleton(skeleton: list[list[int]] | None, count: int) -> list[tuple[int, int]]:
    """0-based pairs of the 1-based ``skeleton`` (COCO's convention)."""
    pairs = [tuple(pair) for pair in skeleton or []]
    if not all(len(p) == 2 and all(1 <= i <= count for i in p) for p in pairs):
        raise SpecError(f"skeleton: pairs of keypoint numbers in 1..{count}, got {skeleton}")
    return [(a - 1, b - 1) for a, b in pairs]
