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


def test_a_split_rewrite_cut_short_is_written_again(tmp_path, monkeypatch):
    """The old info file goes before a split is rewritten: a rewrite that stops half way (new
    images, old annotations) is not taken for the split the old settings made."""
    sizes = {"train_images": 1, "test_images": 1, "image_size": 32}
    first = ShapesDetectionDataModule(data_dir=str(tmp_path), val_images=1, **sizes)
    first.prepare_data()
    val = tmp_path / "val"
    assert first.stored_info(val) == first.wanted_info("val")

    second = ShapesDetectionDataModule(data_dir=str(tmp_path), val_images=2, **sizes)

    def cut_short(folder, images, seed, image_size):
        raise KeyboardInterrupt

    monkeypatch.setattr(second, "generate", cut_short)
    with pytest.raises(KeyboardInterrupt):
        second.prepare_data()
    assert first.stored_info(val) is None  # so first.prepare_data() writes it again


def test_two_generators_sharing_a_data_dir_do_not_read_each_others_images(tmp_path):
    """Detection, then panoptic, then detection again on one ``data_dir``: both write
    ``<split>/images/000001.png``; the third run must not trust its old annotations."""
    sizes = {"train_images": 1, "val_images": 1, "test_images": 1, "image_size": 32}
    image = tmp_path / "train" / "images" / "000001.png"
    detection = ShapesDetectionDataModule(data_dir=str(tmp_path), **sizes)
    detection.prepare_data()
    detection_image = image.read_bytes()
    ShapesPanopticDataModule(data_dir=str(tmp_path), **sizes).prepare_data()
    assert image.read_bytes() != detection_image
    detection.prepare_data()
    assert image.read_bytes() == detection_image
