"""Bbox-, mask- and keypoint-aware detection transforms keep every target on the image."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from visionflow.datamodules.shapes import ShapesDetectionDataModule
from visionflow.datamodules.transforms.detection import (
    apply_detection_transform,
    detection_context,
    with_min_visibility,
)
from visionflow.registry import TRANSFORMS


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("shapes_tf"))
    small_shapes(folder).prepare_data()
    return folder


def small_shapes(shapes_dir: str, **kwargs) -> ShapesDetectionDataModule:
    """12 train, 4 val and 1 test image of 64 px with masks, in ``shapes_dir``."""
    return ShapesDetectionDataModule(
        data_dir=shapes_dir,
        train_images=12,
        val_images=4,
        test_images=1,
        image_size=64,
        masks=True,
        **kwargs,
    )


def eval_samples(shapes_dir: str, **kwargs) -> list:
    dm = small_shapes(shapes_dir, **kwargs)
    dm.setup("validate")
    return [dm.datasets["val"][i] for i in range(4)]


def test_presets_are_registered():
    assert {"detection_train", "detection_eval"} <= set(TRANSFORMS.names())
    assert TRANSFORMS.get("detection_train").tags["family"] == "detection"


def test_flip_moves_image_boxes_and_masks_together(shapes_dir):
    plain = eval_samples(shapes_dir)
    flipped = eval_samples(shapes_dir, transforms={"eval": [{"name": "HorizontalFlip", "p": 1.0}]})
    for (image, target), (image_f, target_f) in zip(plain, flipped):
        assert torch.allclose(image_f, image.flip(-1))
        expected = torch.stack(
            [
                64 - target.boxes[:, 2],
                target.boxes[:, 1],
                64 - target.boxes[:, 0],
                target.boxes[:, 3],
            ],
            dim=1,
        )
        assert torch.allclose(target_f.boxes, expected, atol=1e-4)
        assert torch.equal(target_f.masks, target.masks.flip(-1))
        assert torch.equal(target_f.labels, target.labels)


def test_train_preset_keeps_boxes_on_their_masks(shapes_dir):
    """Random letterbox/scale/shift/flip/color: each surviving box is its mask's extent."""
    dm = small_shapes(shapes_dir, seed=5)
    dm.setup("fit")
    checked = 0
    for index in range(12):
        _, target = dm.datasets["train"][index]
        assert len(target.masks) == len(target.boxes) == len(target.labels) == len(target.area)
        for box, mask in zip(target.boxes, target.masks):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            extent = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
            assert torch.allclose(box, extent, atol=1.5), (box, extent)
            checked += 1
    assert checked > 10


def test_min_visibility_drops_a_box_with_its_mask_and_label():
    context = with_min_visibility(detection_context(None), 0.25)
    crop = context.compose([A.Crop(x_min=0, y_min=0, x_max=30, y_max=40)])
    image = np.zeros((40, 60, 3), np.uint8)
    boxes = np.array([[5, 5, 15, 15], [26, 5, 46, 15]], np.float32)  # second: 20% visible
    masks = np.zeros((2, 40, 60), np.uint8)
    masks[0, 5:15, 5:15] = 1
    masks[1, 5:15, 26:46] = 1
    out = apply_detection_transform(crop, image, boxes, masks)
    assert out.kept.tolist() == [0]
    np.testing.assert_allclose(out.boxes, [[5, 5, 15, 15]])
    assert out.masks.shape == (1, 40, 30) and out.masks.sum() == 100
    # without the filter the cut box survives, clipped to the crop
    out = apply_detection_transform(
        detection_context(None).compose(crop.transforms), image, boxes, masks
    )
    assert out.kept.tolist() == [0, 1]
    np.testing.assert_allclose(out.boxes[1], [26, 5, 30, 15])


def test_letterbox_scales_top_left_and_pads():
    pipeline = TRANSFORMS.get("detection_eval").builder(context=detection_context(32))
    image = np.full((20, 40, 3), 255, np.uint8)
    out = apply_detection_transform(pipeline, image, np.array([[4, 2, 20, 10]], np.float32))
    assert out.image.shape == (32, 32, 3) and out.image.dtype == np.float32
    assert out.image[:16].min() == 1.0 and out.image[16:].max() == 0.0  # scaled to [0, 1], padded
    np.testing.assert_allclose(out.boxes, [[3.2, 1.6, 16, 8]], atol=1e-4)


def test_keypoints_follow_a_flip_and_leave_the_image_invisible():
    pipeline = detection_context(None).compose(
        [A.HorizontalFlip(p=1.0), A.Affine(translate_px={"x": 20, "y": 0}, p=1.0)]
    )
    keypoints = np.array([[[10, 5, 2], [55, 5, 2]]], np.float32)  # [N=1, K=2, 3]
    # x 10 -> flip ~49 -> shift ~69 (outside);  x 55 -> flip ~4 -> shift ~24 (inside)
    out = apply_detection_transform(
        pipeline,
        np.zeros((40, 60, 3), np.uint8),
        np.array([[5, 2, 58, 30]], np.float32),
        keypoints=keypoints,
    )
    assert out.keypoints.shape == (1, 2, 3)
    assert out.keypoints[0, 0, 2] == 0 and out.keypoints[0, 1, 2] == 2  # the first left the image
    assert 22 <= out.keypoints[0, 1, 0] <= 26  # flipped, then shifted


@pytest.mark.parametrize("preset", ["detection_eval", "detection_train"])
def test_one_preset_pads_instance_masks_with_0_and_label_maps_with_ignore(preset):
    """The letterbox (and the train preset's affine zoom-out) pads: instance masks get 0 (outside
    the object), semantic label maps the ignore index, never a real class."""
    from visionflow.batches import IGNORE_INDEX
    from visionflow.datamodules.transforms.segmentation import segmentation_context

    image, box = np.full((16, 32, 3), 200, np.uint8), np.array([[0, 0, 32, 16]], np.float32)
    builder = TRANSFORMS.get(preset).builder
    instances = apply_detection_transform(
        builder(context=detection_context(32, seed=0)), image, box, np.ones((1, 16, 32), np.uint8)
    )
    labels = builder(context=segmentation_context((32, 32), seed=0))(
        image=image, mask=np.ones((16, 32), np.uint8)
    )["mask"]
    assert set(np.unique(instances.masks).tolist()) == {0, 1}
    assert set(np.unique(labels).tolist()) == {1, IGNORE_INDEX}  # class 0 appears nowhere
