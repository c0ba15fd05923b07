"""Tasks: LightningModules registered in ``visionflow.registry.TASKS``, one module per family.

Each module is imported here explicitly (never discovered), so importing ``visionflow.tasks`` fills
the registry. The networks they use live in ``visionflow.tasks.nets``.
"""

from visionflow.tasks import (
    adversarial,
    classification,
    detection,
    generative,
    gradcheck,
    knn,
    mesh,
    occupancy,
    optim,
    pointcloud_segmentation,
    pointclouds,
    rl,
    segmentation,
    two_stream,
    understanding,
    video,
    voxels,
)
from visionflow.tasks.classification import ImageClassificationTask
from visionflow.tasks.detection import ObjectDetectionTask
from visionflow.tasks.gradcheck import GradCheckResult, numerical_gradient_check
from visionflow.tasks.instance_segmentation import InstanceSegmentationTask
from visionflow.tasks.keypoints import KeypointDetectionTask
from visionflow.tasks.knn import KNearestNeighbors
from visionflow.tasks.mesh import ImageToMeshTask
from visionflow.tasks.occupancy import ImageToOccupancyTask
from visionflow.tasks.panoptic import PanopticSegmentationTask
from visionflow.tasks.pointcloud_segmentation import PointCloudSegmentationTask
from visionflow.tasks.pointclouds import ImageToPointCloudTask, PointCloudClassificationTask
from visionflow.tasks.segmentation import SemanticSegmentationTask
from visionflow.tasks.two_stream import TwoStreamTask
from visionflow.tasks.video import VideoClassificationTask
from visionflow.tasks.voxels import ImageToVoxelTask, VoxelClassificationTask

__all__ = [
    "GradCheckResult",
    "ImageClassificationTask",
    "ImageToMeshTask",
    "ImageToOccupancyTask",
    "ImageToPointCloudTask",
    "ImageToVoxelTask",
    "InstanceSegmentationTask",
    "KeypointDetectionTask",
    "KNearestNeighbors",
    "ObjectDetectionTask",
    "SemanticSegmentationTask",
    "PanopticSegmentationTask",
    "PointCloudClassificationTask",
    "PointCloudSegmentationTask",
    "TwoStreamTask",
    "VideoClassificationTask",
    "VoxelClassificationTask",
    "adversarial",
    "classification",
    "detection",
    "generative",
    "gradcheck",
    "knn",
    "mesh",
    "numerical_gradient_check",
    "occupancy",
    "optim",
    "rl",
    "segmentation",
    "pointcloud_segmentation",
    "pointclouds",
    "two_stream",
    "understanding",
    "video",
    "voxels",
]
