"""The procedural shapes dataset (a real COCO file + PNGs) and the batch contract on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from visionflow.batches import DetectionBatch, DetectionTarget
from visionflow.datamodules.detection_base import decode_masks
from visionflow.datamodules.shapes import ShapesDetectionDataModule, make_shapes_dataset
from visionflow.registry import DATAMODULES


@pytest.fixture(scope="module")
def shapes_json(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), images=6, seed=3, image_size=64)


@pytest.fixture(scope="module")
def shapes_module(tmp_path_factory):
    module = ShapesDetectionDataModule(
        data_dir=str(tmp_path_factory.mktemp("shapes_dm")),
        train_images=6,
        val_images=3,
        test_images=3,
        image_size=64,
        batch_size=3,
        masks=True,
    )
    module.prepare_data()
    return module


def test_same_seed_same_files_other_seed_other_files(shapes_json, tmp_path):
    again = make_shapes_dataset(tmp_path / "a", images=6, seed=3, image_size=64)
    other = make_shapes_dataset(tmp_path / "b", images=6, seed=4, image_size=64)
    assert again.read_text() == shapes_json.read_text()
    assert (tmp_path / "a/images/000001.png").read_bytes() == (
        shapes_json.parent / "images/000001.png"
    ).read_bytes()
    assert other.read_text() != shapes_json.read_text()


def test_annotations_match_the_pixels(shapes_json):
    """Each mask (polygon or RLE) covers pixels that differ from the background, its bbox is the
    mask's tight box and its area the mask's size."""
    dataset = json.loads(shapes_json.read_text())
    assert {c["name"] for c in dataset["categories"]} == {"circle", "square", "triangle"}
    kinds = {type(a["segmentation"]).__name__ for a in dataset["annotations"]}
    assert kinds == {"list", "dict"}  # polygons and RLE both present
    for image in dataset["images"]:
        pixels = np.asarray(Image.open(shapes_json.parent / "images" / image["file_name"]))
        background = np.median(pixels[:2, :2].reshape(-1, 3), axis=0)
        for ann in (a for a in dataset["annotations"] if a["image_id"] == image["id"]):
            segmentation = ann["segmentation"]
            rle = (
                mask_utils.merge(mask_utils.frPyObjects(segmentation, 64, 64))
                if isinstance(segmentation, list)
                else {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
            )
            mask = mask_utils.decode(rle).astype(bool)
            np.testing.assert_array_equal(mask_utils.toBbox(rle), ann["bbox"])
            assert mask.sum() == ann["area"]
            inside = np.abs(pixels[mask].astype(int) - background).sum(axis=1)
            assert np.median(inside) > 60  # the shape's own color, not background


def test_registered_and_prepare_data_reuses_or_regenerates(tmp_path):
    assert DATAMODULES.get("shapes_detection").tags["batch"] is DetectionBatch
    module = ShapesDetectionDataModule(
        data_dir=str(tmp_path), train_images=2, val_images=1, test_images=1, image_size=32
    )
    module.prepare_data()
    stamp = (tmp_path / "train/annotations.json").stat().st_mtime_ns
    module.prepare_data()
    assert (tmp_path / "train/annotations.json").stat().st_mtime_ns == stamp
    bigger = ShapesDetectionDataModule(
        data_dir=str(tmp_path), train_images=3, val_images=1, test_images=1, image_size=32
    )
    bigger.prepare_data()
    assert len(json.loads((tmp_path / "train/annotations.json").read_text())["images"]) == 3


def test_batch_contract(shapes_module):
    shapes_module.setup("fit")
    batch = next(iter(shapes_module.val_dataloader()))
    assert isinstance(batch, DetectionBatch) and len(batch) == 3
    for image, target in zip(batch.images, batch.targets):
        assert image.dtype == torch.float32 and image.shape == (3, 64, 64)
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert isinstance(target, DetectionTarget) and isinstance(target.image_id, int)
        count = len(target.boxes)
        assert target.boxes.dtype == torch.float32 and target.boxes.shape == (count, 4)
        assert target.labels.dtype == torch.int64 and target.labels.shape == (count,)
        assert target.iscrowd.dtype == torch.bool and not target.iscrowd.any()
        assert target.masks.dtype == torch.uint8 and target.masks.shape == (count, 64, 64)
        boxes = target.boxes
        assert (boxes[:, 2:] > boxes[:, :2]).all()  # XYXY, not XYWH
        assert boxes.min() >= 0 and boxes.max() <= 64  # absolute pixels
        for box, mask in zip(boxes, target.masks):  # box = mask extent
            ys, xs = torch.nonzero(mask, as_tuple=True)
            extent = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
            assert torch.equal(box, extent)


def test_label_map_round_trip(shapes_module):
    label_map = shapes_module.label_map
    info = shapes_module.info
    assert info.num_classes == 3 and info.in_channels == 3 and info.image_size == (64, 64)
    assert info.class_names == ("circle", "square", "triangle")
    assert info.category_ids == (1, 2, 3)
    assert info.task_kwargs()["category_ids"] == [1, 2, 3]
    labels, found = label_map.labels(np.array([3, 1, 2]))
    assert found.all() and labels.tolist() == [2, 0, 1]
    assert [label_map.category_id(int(label)) for label in labels] == [3, 1, 2]
    assert not label_map.labels(np.array([7]))[1].any()


def test_masks_decode_from_polygons_and_rle(shapes_module):
    record = shapes_module.records("train")[0]
    masks = decode_masks(record, 64, 64)
    assert masks.shape == (len(record.boxes), 64, 64) and masks.dtype == np.uint8
    assert (masks.reshape(len(masks), -1).sum(axis=1) > 0).all()
