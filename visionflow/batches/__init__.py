"""The batch contracts where datamodules and tasks meet, one module per family.

A datamodule yields one of these batch types and describes its data with the batch's
``DatasetInfo`` (``BatchType.info_type``); a task consumes a batch type. Neither imports the
other, so a datamodule works in any Lightning project and a task trains on any data that speaks
its contract. The registries tag each entry with ``batch=<type>``; the spec refuses a
task/datamodule pair whose types differ.

Every batch also unpacks the way torchvision datasets and Lightning tutorials expect:
``images, targets = batch`` yields its first two fields (detection: a list of images and a
list of target dicts, as torchvision's detection references use them), so a plain
``for x, y in loader`` loop or an existing LightningModule works unchanged.

Conventions (see docs/architecture.md): images float32 ``[B, C, H, W]`` normalized by the transform
preset; boxes ``[N, 4]`` XYXY in absolute pixels; semantic masks ``[B, H, W]`` int64 with
``IGNORE_INDEX``; instance masks ``[N, H, W]`` uint8.

A new family adds ``visionflow/batches/<family>.py`` with its batch dataclass (and a
``DatasetInfo`` subclass when its tasks need more from the data) and one import line here.
"""

from visionflow.batches.classification import ClassificationDatasetInfo, ImageClassificationBatch
from visionflow.batches.core import IGNORE_INDEX, Batch, DatasetInfo, provided_arguments
from visionflow.batches.detection import (
    DetectionBatch,
    DetectionDatasetInfo,
    DetectionTarget,
    InstanceBatch,
    KeypointBatch,
    KeypointDatasetInfo,
)
from visionflow.batches.occupancy import ImageToOccupancyBatch
from visionflow.batches.panoptic import PanopticBatch, PanopticDatasetInfo, PanopticTarget
from visionflow.batches.pointclouds import (
    ImageToPointCloudBatch,
    PointCloudBatch,
    PointCloudDatasetInfo,
    PointCloudSegmentationBatch,
)
from visionflow.batches.rl import (
    Actor,
    ActorOutput,
    Episode,
    EpisodeBatch,
    RLDatasetInfo,
    RolloutBatch,
)
from visionflow.batches.segmentation import SegmentationBatch
from visionflow.batches.video import VideoBatch, VideoDatasetInfo
from visionflow.batches.voxels import ImageToVoxelBatch, VoxelBatch, VoxelDatasetInfo

__all__ = [
    "IGNORE_INDEX",
    "Actor",
    "ActorOutput",
    "Batch",
    "ClassificationDatasetInfo",
    "DatasetInfo",
    "DetectionBatch",
    "DetectionDatasetInfo",
    "DetectionTarget",
    "Episode",
    "EpisodeBatch",
    "ImageClassificationBatch",
    "ImageToOccupancyBatch",
    "ImageToPointCloudBatch",
    "ImageToVoxelBatch",
    "InstanceBatch",
    "KeypointBatch",
    "KeypointDatasetInfo",
    "PanopticBatch",
    "PanopticDatasetInfo",
    "PanopticTarget",
    "PointCloudBatch",
    "PointCloudDatasetInfo",
    "PointCloudSegmentationBatch",
    "RLDatasetInfo",
    "RolloutBatch",
    "SegmentationBatch",
    "VideoBatch",
    "VideoDatasetInfo",
    "VoxelBatch",
    "VoxelDatasetInfo",
    "provided_arguments",
]
