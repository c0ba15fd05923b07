"""Keypoints stay on the pixels they mark: continuous pixel coordinates, as the boxes have them.

A pixel ``(row, col)`` spans ``[col, col + 1] x [row, row + 1]``, so the centre of a block of
columns ``20..25`` is ``x = 23``: where its XYXY box ``[20, ..., 26, ...]`` has its centre too.
albumentations 2.0.8 moves keypoints as pixel indices in its flips, rotations and affine warps
(``HorizontalFlip``: ``x -> W - 1 - x``), one pixel off the image and the box after a flip.
"""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from visionflow.datamodules.shapes import ShapesKeypointsDataModule
from visionflow.datamodules.transforms.detection import (
    apply_detection_transform,
    detection_context,
)

HEIGHT, WIDTH = 40, 60
BLOCK_ROWS, BLOCK_COLS = slice(10, 14), slice(20, 26)
LEFT, RIGHT = 3, 1  # shapes' KEYPOINT_NAMES: top, right_extreme, bottom, left_extreme


def block_sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(image uint8 [H, W, 3], box [1, 4], keypoints [1, 1, 3])``: a white block, its box and
    a keypoint at its centre."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[BLOCK_ROWS, BLOCK_COLS] = 255
    box = np.array([[20, 10, 26, 14]], np.float32)
    return image, box, np.array([[[23.0, 12.0, 2.0]]], np.float32)


def block_centre(image: np.ndarray) -> np.ndarray:
    """``(x, y)`` of the bright pixels' centre of ``image`` float [H, W, C], in pixel edges."""
    rows, cols = np.nonzero(image[..., 0] > 0.5)
    return np.array([cols.mean() + 0.5, rows.mean() + 0.5])


@pytest.mark.parametrize(
    "step",
    [
        A.HorizontalFlip(p=1.0),
        A.VerticalFlip(p=1.0),
        A.RandomRotate90(p=1.0),
        A.D4(p=1.0),
        A.Affine(scale=2.0, p=1.0),
        A.Affine(rotate=90, p=1.0),
    ],
    ids=lambda step: type(step).__name__,
)
def test_a_keypoint_at_a_blocks_centre_stays_at_its_pixels_and_box_centre(step):
    image, box, keypoints = block_sample()
    out = apply_detection_transform(
        detection_context(None, seed=1).compose([step]), image, box, keypoints=keypoints
    )
    box_centre = (out.boxes[0, :2] + out.boxes[0, 2:]) / 2
    np.testing.assert_allclose(block_centre(out.image), box_centre, atol=0.2)
    np.testing.assert_allclose(out.keypoints[0, 0, :2], box_centre, atol=0.05)


def test_shapes_extreme_points_stay_on_their_box_edges_after_a_flip(tmp_path):
    """The generator puts ``left_extreme`` on the middle of the leftmost mask pixels: half a
    pixel right of the box's left edge; a flip keeps it there (after the left/right swap)."""
    flipped = ShapesKeypointsDataModule(
        data_dir=str(tmp_path),
        train_images=1,
        val_images=2,
        test_images=1,
        image_size=64,
        transforms={"eval": [{"name": "HorizontalFlip", "p": 1.0}]},
    )
    flipped.prepare_data()
    flipped.setup("validate")
    for index in range(len(flipped.datasets["val"])):
        _, target = flipped.datasets["val"][index]
        for box, points in zip(target.boxes, target.keypoints):
            assert points[LEFT, 0].item() == pytest.approx(box[0].item() + 0.5, abs=1e-4)
            assert points[RIGHT, 0].item() == pytest.approx(box[2].item() - 0.5, abs=1e-4)
