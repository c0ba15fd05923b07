"""Batches unpack the way torchvision datasets and Lightning tutorials expect, and say what the
data provides to a task."""

from __future__ import annotations

import inspect

import torch

import visionflow.batches as batches
from visionflow.batches import (
    DetectionBatch,
    DetectionTarget,
    ImageClassificationBatch,
    SegmentationBatch,
    provided_arguments,
)
from visionflow.batches.core import Batch
from visionflow.datamodules import DigitsDataModule


def test_a_classification_datamodule_works_in_a_plain_loop():
    datamodule = DigitsDataModule(batch_size=8, limit=40)
    datamodule.prepare_data()
    datamodule.setup("fit")
    for images, targets in datamodule.train_dataloader():
        assert images.shape[0] == targets.shape[0] == 8 and images.dim() == 4
        break


def test_detection_batches_unpack_into_torchvision_target_dicts():
    target = DetectionTarget(
        boxes=torch.tensor([[1.0, 2.0, 5.0, 6.0]]), labels=torch.tensor([2]), image_id=7
    )
    images, targets = DetectionBatch([torch.zeros(3, 8, 8)], [target])
    assert len(images) == 1 and targets[0]["boxes"].shape == (1, 4)
    assert dict(targets[0]).keys() == {"boxes", "labels", "image_id"}  # unset fields left out
    copied = {key: value for key, value in targets[0].items()}  # as torchvision's transform does
    assert torch.equal(copied["labels"], torch.tensor([2]))


def test_unpacking_and_length_of_tensor_batches():
    images, masks = SegmentationBatch(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4))
    assert images.shape == (2, 3, 4, 4) and masks.shape == (2, 4, 4)
    assert len(ImageClassificationBatch(torch.zeros(5, 1, 2, 2), torch.zeros(5))) == 5


def test_each_batch_type_says_what_the_data_provides():
    assert provided_arguments(ImageClassificationBatch) == (
        "num_classes",
        "class_names",
        "in_channels",
        "image_size",
        "pixel_mean",
        "pixel_std",
    )
    assert provided_arguments(DetectionBatch)[-1] == "category_ids"


def test_every_batch_type_unpacks_into_its_input_and_what_is_learnt():
    """The pair each batch type yields, as before the first-two-fields default replaced the
    ``unpacked`` tuple each one spelled out (a field reordered in a batch fails here)."""
    pairs = {
        name: kind.unpacked_fields()
        for name, kind in vars(batches).items()
        if inspect.isclass(kind) and issubclass(kind, Batch) and kind is not Batch
    }
    assert pairs == {
        "ImageClassificationBatch": ("images", "targets"),
        "DetectionBatch": ("images", "targets"),
        "InstanceBatch": ("images", "targets"),
        "KeypointBatch": ("images", "targets"),
        "ImageToOccupancyBatch": ("images", "occupancy"),  # names its pair: queries come between
        "PanopticBatch": ("images", "targets"),
        "ImageToPointCloudBatch": ("images", "points"),
        "PointCloudBatch": ("points", "labels"),
        "PointCloudSegmentationBatch": ("points", "point_labels"),
        "EpisodeBatch": ("seeds", "player"),
        "RolloutBatch": ("observations", "actions"),
        "SegmentationBatch": ("images", "masks"),
        "VideoBatch": ("clips", "targets"),
        "ImageToVoxelBatch": ("images", "voxels"),
        "VoxelBatch": ("voxels", "labels"),
    }
