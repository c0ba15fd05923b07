"""The generators' arguments (``GeneratedSplits`` and the classes that declare them): checked at
construction, each under its spec key, before anything is written."""

from __future__ import annotations

import pytest

from visionflow.datamodules.panoptic import ShapesPanopticDataModule
from visionflow.datamodules.segmentation_coco import ShapesSegmentationDataModule
from visionflow.datamodules.shapes import ShapesDetectionDataModule
from visionflow.datamodules.shapes3d import Shapes3DPointsDataModule
from visionflow.datamodules.shapes3d_parts import Shapes3DPartsDataModule
from visionflow.datamodules.video_moving_shapes import MovingShapesVideoDataModule
from visionflow.errors import SpecError

GENERATED_IMAGES = [
    ShapesDetectionDataModule,
    ShapesSegmentationDataModule,
    ShapesPanopticDataModule,
]
BAD_IMAGE_ARGUMENTS = [
    ({"val_images": 0}, "val_images: must be >= 1, got 0"),
    ({"image_size": 16}, "image_size: must be >= 32, got 16"),
]
BAD_ARGUMENTS = [
    *((module, *case) for module in GENERATED_IMAGES for case in BAD_IMAGE_ARGUMENTS),
    (Shapes3DPointsDataModule, {"test_samples": 0}, "test_samples: must be >= 1, got 0"),
    (Shapes3DPointsDataModule, {"image_size": 8}, "image_size: must be >= 16, got 8"),
    (Shapes3DPointsDataModule, {"resolution": 0}, "resolution: must be >= 1, got 0"),
    (Shapes3DPartsDataModule, {"train_samples": 0}, "train_samples: must be >= 1, got 0"),
    (Shapes3DPartsDataModule, {"num_points": 0}, "num_points: must be >= 1, got 0"),
    (MovingShapesVideoDataModule, {"val_videos": 0}, "val_videos: must be >= 1, got 0"),
    (MovingShapesVideoDataModule, {"frames": 0}, "frames: must be >= 1, got 0"),
]


@pytest.mark.parametrize(
    "module_class, arguments, message",
    BAD_ARGUMENTS,
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_bad_generator_arguments_fail_at_construction(module_class, arguments, message, tmp_path):
    with pytest.raises(SpecError, match=message):
        module_class(data_dir=str(tmp_path), **arguments)
    assert not any(tmp_path.iterdir())
