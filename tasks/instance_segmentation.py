"""Instance segmentation: Mask R-CNN trained on ``InstanceBatch``, scored with COCO box and mask mAP.

    task = InstanceSegmentationTask(num_classes=3, net="maskrcnn_mobilenet_v3_large_fpn",
                                    net_args={"min_size": 128, "max_size": 128})
    trainer.fit(task, datamodule)   # e.g. shapes_instances or coco_instances

Everything of :class:`~visionflow.tasks.detection.ObjectDetectionTask` (arguments, losses, crowd
handling, the non-finite loss check), with masks: the targets' ``masks`` train the mask head
(``train/loss_mask``), ``forward`` adds ``masks`` bool [N, H, W] to each image's detections
(probabilities cut at 0.5), validation and test log the box metrics (``val/mAP`` ...) and the
same of the masks (``val/mask_mAP val/mask_AP50 ...``, COCO ``segm``), prediction writes masks as
compressed RLE in the results file, and the overlays fill ground truth and predicted masks in two
colours. The checkpoint monitor is ``val/mask_mAP``.
"""

from __future__ import annotations

from visionflow.batches import InstanceBatch
from visionflow.registry import TASKS
from visionflow.tasks.detection import ObjectDetectionTask
from visionflow.tasks.detection_io import init_with_defaults

DEFAULT_NET = "maskrcnn_mobilenet_v3_large_fpn"


@TASKS.register("instance_segmentation", batch=InstanceBatch)
class InstanceSegmentationTask(ObjectDetectionTask):
    """Detect and segment objects of ``num_classes`` classes with a Mask R-CNN (``net``); the
    arguments are those of ``object_detection``."""

    checkpoint_monitor = ("val/mask_mAP", "max")
    predicts = "masks"
    iou_types = ("bbox", "segm")

    __init__ = init_with_defaults(ObjectDetectionTask.__init__, net=DEFAULT_NET)
