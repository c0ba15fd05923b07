"""The generator's arguments that every shapes datamodule shares (``GeneratedSplits``): checked
alike at construction, before anything is written."""

from __future__ import annotations

import pytest

from visionflow.datamodules.panoptic import ShapesPanopticDataModule
from visionflow.datamodules.segmentation_coco import ShapesSegmentationDataModule
from visionflow.datamodules.shapes import ShapesDetectionDataModule
from visionflow.errors import SpecError

GENERATED = [ShapesDetectionDataModule, ShapesSegmentationDataModule, ShapesPanopticDataModule]


@pytest.mark.parametrize("module_class", GENERATED, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"val_images": 0}, "val_images: must be >= 1, got 0"),
        ({"image_size": 16}, "image_size: must be >= 32, got 16"),
    ],
)
def test_bad_generator_arguments_fail_at_construction(module_class, arguments, message, tmp_path):
    with pytest.raises(SpecError, match=message):
        module_class(data_dir=str(tmp_path), **arguments)
    assert not any(tmp_path.iterdir())
