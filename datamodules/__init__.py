"""Datamodules for classification and detection; each registers itself in ``visionflow.registry.DATAMODULES``.

    from visionflow.datamodules import CIFAR10DataModule
    dm = CIFAR10DataModule(root="data", batch_size=128)
    dm.prepare_data(); dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))   # ImageClassificationBatch

name                class                      source
------------------  -------------------------  --------------------------------------------
digits              DigitsDataModule           scikit-learn's bundled 8x8 digits (offline)
mnist               MNISTDataModule            IDX files, torchvision or flat layout
fashion_mnist       FashionMNISTDataModule     IDX files; Debian's dataset-fashion-mnist
cifar10             CIFAR10DataModule          python pickles or binary batches
cifar100            CIFAR100DataModule         python pickles or binary batches
image_folder        ImageFolderDataModule      class subfolders of JPEG/PNG files
coco_detection      CocoDetectionDataModule    COCO JSON + images (boxes, masks, keypoints)
voc_detection       VOCDetectionDataModule     Pascal VOC XML annotations
yolo_detection      YoloDetectionDataModule    YOLO txt labels + dataset yaml (e.g. coco8)
shapes_detection    ShapesDetectionDataModule  generated circles/squares/triangles (offline)
coco_instances      CocoInstancesDataModule    COCO JSON + images, every object's mask (instance seg.)
shapes_instances    ShapesInstancesDataModule  generated shapes with their masks (offline)
coco_keypoints      CocoKeypointsDataModule    COCO JSON + images, every object's named keypoints (pose)
shapes_keypoints    ShapesKeypointsDataModule  generated shapes with their 4 extreme points (offline)
experience          ExperienceDataModule       rollouts and seeded episodes of gymnasium environments
coco_segmentation   CocoSegmentationDataModule COCO instances or panoptic PNG + JSON -> label maps
yolo_segmentation   YoloSegmentationDataModule YOLO polygons (e.g. coco8-seg) -> label maps
shapes_segmentation ShapesSegmentationDataModule  generated shapes as label maps (offline)
segmentation_folder SegmentationFolderDataModule  images/ + masks/ PNG label maps
voc_segmentation    VOCSegmentationDataModule  Pascal VOC JPEGs + palette PNG masks
shapes3d_points     Shapes3DPointsDataModule   generated 3D primitives as point clouds (offline)
shapes3d_views      Shapes3DViewsDataModule    rendered views of them + their point clouds
shapes3d_parts      Shapes3DPartsDataModule    their point clouds labelled point by point by part
modelnet_points     ModelNetDataModule         ModelNet10/40 OFF meshes sampled into points
modelnet_voxels     ModelNetVoxelsDataModule   ModelNet10/40 OFF meshes as surface voxel grids
shapes3d_voxels     Shapes3DVoxelsDataModule   Shapes3D primitives as solid voxel grids
shapes3d_view_voxels  Shapes3DViewVoxelsDataModule  rendered views + their voxel grids
shapes3d_occupancy  Shapes3DOccupancyDataModule  rendered views + inside/outside query points
shapenet_points     ShapeNetPointsDataModule   ShapeNetCore OBJ meshes sampled into points
shapenet_views      ShapeNetViewsDataModule    ShapeNet views (given or rendered) + points, normals
shapenet_view_voxels  ShapeNetViewVoxelsDataModule  ShapeNet views + voxel grids
pix3d_views         Pix3DViewsDataModule       Pix3D photos (masked, cropped) + points, normals
pix3d_view_voxels   Pix3DViewVoxelsDataModule  Pix3D photos + voxel grids
video_folder        VideoFolderDataModule      class subfolders of videos or frame folders (UCF101)
moving_shapes       MovingShapesVideoDataModule  generated shapes moving in 6 ways, .mp4 (offline)
"""

from visionflow.datamodules.base import ImageClassificationDataModule, VisionDataModule
from visionflow.datamodules.cifar import CIFAR10DataModule, CIFAR100DataModule
from visionflow.datamodules.coco_detection import (
    CocoDetectionDataModule,
    CocoInstancesDataModule,
    CocoKeypointsDataModule,
)
from visionflow.datamodules.digits import DigitsDataModule
from visionflow.datamodules.experience import ExperienceDataModule
from visionflow.datamodules.image_folder import ImageFolderDataModule
from visionflow.datamodules.mnist import FashionMNISTDataModule, MNISTDataModule
from visionflow.datamodules.modelnet import ModelNetDataModule, ModelNetVoxelsDataModule
from visionflow.datamodules.panoptic import CocoPanopticDataModule, ShapesPanopticDataModule
from visionflow.datamodules.pix3d import Pix3DViewsDataModule, Pix3DViewVoxelsDataModule
from visionflow.datamodules.segmentation_coco import (
    CocoSegmentationDataModule,
    ShapesSegmentationDataModule,
    YoloSegmentationDataModule,
)
from visionflow.datamodules.segmentation_folder import (
    SegmentationFolderDataModule,
    VOCSegmentationDataModule,
)
from visionflow.datamodules.shapenet import (
    ShapeNetPointsDataModule,
    ShapeNetViewsDataModule,
    ShapeNetViewVoxelsDataModule,
)
from visionflow.datamodules.shapes import (
    ShapesDetectionDataModule,
    ShapesInstancesDataModule,
    ShapesKeypointsDataModule,
    make_shapes_dataset,
)
from visionflow.datamodules.shapes3d import (
    Shapes3DPointsDataModule,
    Shapes3DViewsDataModule,
    make_shapes3d_dataset,
)
from visionflow.datamodules.shapes3d_parts import (
    Shapes3DPartsDataModule,
    make_shapes3d_parts_dataset,
)
from visionflow.datamodules.shapes3d_voxels import (
    Shapes3DOccupancyDataModule,
    Shapes3DViewVoxelsDataModule,
    Shapes3DVoxelsDataModule,
)
from visionflow.datamodules.tensor_data import TensorClassificationDataset, TensorDataModule
from visionflow.datamodules.video_folder import VideoFolderDataModule
from visionflow.datamodules.video_moving_shapes import MovingShapesVideoDataModule
from visionflow.datamodules.voc_detection import VOCDetectionDataModule
from visionflow.datamodules.yolo_detection import YoloDetectionDataModule

__all__ = [
    "CIFAR100DataModule",
    "CIFAR10DataModule",
    "CocoDetectionDataModule",
    "CocoInstancesDataModule",
    "CocoKeypointsDataModule",
    "CocoPanopticDataModule",
    "CocoSegmentationDataModule",
    "DigitsDataModule",
    "ExperienceDataModule",
    "FashionMNISTDataModule",
    "ImageClassificationDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "MovingShapesVideoDataModule",
    "SegmentationFolderDataModule",
    "ModelNetDataModule",
    "ModelNetVoxelsDataModule",
    "Pix3DViewVoxelsDataModule",
    "Pix3DViewsDataModule",
    "ShapeNetPointsDataModule",
    "ShapeNetViewVoxelsDataModule",
    "ShapeNetViewsDataModule",
    "ShapesPanopticDataModule",
    "Shapes3DOccupancyDataModule",
    "Shapes3DPartsDataModule",
    "Shapes3DPointsDataModule",
    "Shapes3DViewsDataModule",
    "Shapes3DViewVoxelsDataModule",
    "Shapes3DVoxelsDataModule",
    "ShapesDetectionDataModule",
    "ShapesInstancesDataModule",
    "ShapesKeypointsDataModule",
    "ShapesSegmentationDataModule",
    "TensorClassificationDataset",
    "TensorDataModule",
    "VOCDetectionDataModule",
    "VOCSegmentationDataModule",
    "VideoFolderDataModule",
    "VisionDataModule",
    "YoloDetectionDataModule",
    "YoloSegmentationDataModule",
    "make_shapes3d_dataset",
    "make_shapes3d_parts_dataset",
    "make_shapes_dataset",
]
