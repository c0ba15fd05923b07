"""Mirroring flips swap named left/right keypoints (COCO ``categories[].keypoints``)."""

from __future__ import annotations

import json
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from visionflow.datamodules.coco_detection import CocoDetectionDataModule
from visionflow.datamodules.transforms.detection import (
    annotation_mirror_orders,
    apply_detection_transform,
    detection_context,
    is_mirrored,
    label_mirror_orders,
    mirror_order,
)
from visionflow.errors import DataError

NAMES = ("nose", "left_eye", "right_eye", "left_wrist", "right_wrist")
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_WRIST, RIGHT_WRIST = range(5)
HEIGHT, WIDTH = 40, 60


def person() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A person-like figure facing the camera: ``(image [H, W, 3], box [1, 4], keypoints [1, 5, 3])``
    with distinct visibility flags, so a swap shows in the flags too (its left wrist is hidden)."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[4:16, 22:38] = 200  # head
    image[16:38, 18:42] = 120  # body
    keypoints = np.array(
        [
            [
                [30, 10, 2],  # nose
                [35, 8, 2],
                [25, 9, 2],  # left eye (image right), right eye
                [44, 30, 1],
                [12, 28, 2],
            ]
        ],  # left wrist hidden, right wrist
        np.float32,
    )
    return image, np.array([[10, 4, 50, 38]], np.float32), keypoints


def flipped(pipeline: list, names=NAMES, seed: int | None = None):
    """``(swapped, plain)`` keypoints [1, K, 3] of ``pipeline`` with and without left/right names."""
    image, boxes, keypoints = person()
    orders = annotation_mirror_orders(label_mirror_orders([names]), np.array([0]), len(names))
    compose = detection_context(None, seed=seed).compose(pipeline)
    swapped = apply_detection_transform(
        compose, image, boxes, keypoints=keypoints, mirror_orders=orders
    ).keypoints
    compose.set_random_seed(seed)
    plain = apply_detection_transform(compose, image, boxes, keypoints=keypoints).keypoints
    return swapped, plain


def test_mirror_order_pairs_left_and_right_names():
    assert mirror_order(NAMES).tolist() == [0, 2, 1, 4, 3]
    assert mirror_order(["left_ear", "nose", "right_knee"]).tolist() == [0, 1, 2]  # no partners


def test_horizontal_flip_puts_left_where_the_right_one_mirrored_to():
    swapped, plain = flipped([A.HorizontalFlip(p=1.0)])
    _, _, original = person()
    # the plain flip moves each point to the mirrored x (continuous coordinates: width - x) ...
    np.testing.assert_allclose(plain[0, :, 0], WIDTH - original[0, :, 0])
    # ... and the swap relabels: the new left eye is the old right eye, mirrored, with its flag
    np.testing.assert_allclose(swapped[0, LEFT_EYE], [WIDTH - 25, 9, 2])
    np.testing.assert_allclose(swapped[0, RIGHT_EYE], [WIDTH - 35, 8, 2])
    np.testing.assert_allclose(swapped[0, LEFT_WRIST], [WIDTH - 12, 28, 2])
    np.testing.assert_allclose(swapped[0, RIGHT_WRIST], [WIDTH - 44, 30, 1])  # hidden one
    np.testing.assert_allclose(swapped[0, NOSE], plain[0, NOSE])
    # a person facing the camera has its left side on the image's right again
    assert swapped[0, LEFT_EYE, 0] > swapped[0, NOSE, 0] > swapped[0, RIGHT_EYE, 0]


@pytest.mark.parametrize(
    "pipeline, mirrored",
    [
        ([A.HorizontalFlip(p=1.0)], True),
        ([A.VerticalFlip(p=1.0)], True),
        ([A.Transpose(p=1.0)], True),
        ([A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0)], False),  # a 180-degree rotation
        ([A.HorizontalFlip(p=0.0)], False),  # not applied
        ([A.ColorJitter(p=1.0), A.Affine(translate_px={"x": 3, "y": 0}, p=1.0)], False),
        ([A.OneOf([A.HorizontalFlip(p=1.0)], p=1.0)], True),  # nested
    ],
)
def test_swap_follows_the_flips_that_ran(pipeline, mirrored):
    swapped, plain = flipped(pipeline)
    expected = plain[:, mirror_order(NAMES)] if mirrored else plain
    np.testing.assert_allclose(swapped, expected)


def test_random_flip_swaps_exactly_when_it_flips():
    seen = set()
    for seed in range(12):
        swapped, plain = flipped([A.HorizontalFlip(p=0.5)], seed=seed)
        did_flip = plain[0, LEFT_EYE, 0] == WIDTH - 35  # the nose, x = 30, is on the axis
        expected = plain[:, mirror_order(NAMES)] if did_flip else plain
        np.testing.assert_allclose(swapped, expected)
        seen.add(bool(did_flip))
    assert seen == {True, False}


def test_symmetry_group_elements_that_mirror():
    assert is_mirrored([("D4", {"group_element": "h"})])
    assert is_mirrored([("SquareSymmetry", {"group_element": "hvt"})])
    assert not is_mirrored([("D4", {"group_element": "r90"})])
    assert is_mirrored(
        [
            ("HorizontalFlip", {}),
            ("D4", {"group_element": "t"}),  # three
            ("Transpose", {}),
            ("ColorJitter", {}),
        ]
    )  # mirrors


def test_names_without_pairs_swap_nothing():
    assert label_mirror_orders([("nose", "tail"), ()]) == {}
    assert annotation_mirror_orders({}, np.array([0, 1]), 2) is None
    swapped, plain = flipped([A.HorizontalFlip(p=1.0)], names=("nose", "a", "b", "c", "d"))
    np.testing.assert_allclose(swapped, plain)


def test_only_labels_with_pairs_are_reordered():
    orders = annotation_mirror_orders({1: np.array([1, 0])}, np.array([0, 1]), 2)
    assert orders.tolist() == [[0, 1], [1, 0]]


def test_a_pipeline_that_does_not_record_its_flips_is_refused():
    image, boxes, keypoints = person()
    plain_compose = A.Compose(
        [A.HorizontalFlip(p=1.0)],
        bbox_params=detection_context(None).compose_kwargs["bbox_params"],
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
    )
    with pytest.raises(ValueError, match="save_applied_params"):
        apply_detection_transform(
            plain_compose,
            image,
            boxes,
            keypoints=keypoints,
            mirror_orders=mirror_order(NAMES)[None],
        )


# ------------------------------------------------------------------- through the COCO datamodule


def write_people(
    folder: Path, person_keypoints: list, dog_keypoints: list, names: tuple = tuple(NAMES)
) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    Image.fromarray(person()[0]).save(folder / "images" / "1.png")
    dataset = {
        "images": [{"id": 1, "file_name": "1.png", "height": HEIGHT, "width": WIDTH}],
        "categories": [{"id": 1, "name": "person", "keypoints": names}, {"id": 2, "name": "dog"}],
        "annotations": [
            {
                "id": 11,
                "image_id": 1,
                "category_id": 1,
                "bbox": [10, 4, 40, 34],
                "iscrowd": 0,
                "keypoints": person_keypoints,
            },
            {
                "id": 12,
                "image_id": 1,
                "category_id": 2,
                "bbox": [2, 20, 10, 10],
                "iscrowd": 0,
                "keypoints": dog_keypoints,
            },
        ],
    }
    (folder / "people.json").write_text(json.dumps(dataset))


def people(folder: Path, **kwargs) -> CocoDetectionDataModule:
    return CocoDetectionDataModule(
        root=str(folder), val_annotations="people.json", keypoints=True, **kwargs
    )


def test_coco_flip_swaps_the_person_keypoints_by_category_names(tmp_path):
    person_points = person()[2].reshape(-1).tolist()
    dog_points = [3, 22, 2, 5, 22, 2, 7, 22, 2, 9, 22, 2, 11, 22, 1]  # unnamed: keeps order
    write_people(tmp_path, person_points, dog_points)
    dm = people(tmp_path, transforms={"eval": [{"name": "HorizontalFlip", "p": 1.0}]})
    assert dm.label_map.keypoint_names == (NAMES, ())
    dm.setup("validate")
    _, target = dm.datasets["val"][0]
    man, dog = target.keypoints
    assert torch.allclose(man[LEFT_EYE], torch.tensor([WIDTH - 25.0, 9, 2]))
    assert torch.allclose(man[RIGHT_WRIST], torch.tensor([WIDTH - 44.0, 30, 1]))
    assert torch.allclose(dog[:, 0], WIDTH - torch.tensor([3.0, 5, 7, 9, 11]))
    assert dog[:, 2].tolist() == [2, 2, 2, 2, 1]


def test_coco_keypoint_names_must_match_the_points(tmp_path):
    write_people(tmp_path, [1, 2, 2] * 5, [1, 2, 2] * 5, names=["nose", "left_eye"])
    with pytest.raises(DataError, match=r"id 11.*has 5 points, but its category 1 names 2"):
        people(tmp_path).records("val")


def test_coco_keypoint_names_must_be_strings(tmp_path):
    write_people(tmp_path, [1, 2, 2] * 5, [1, 2, 2] * 5, names=[1, 2, 3, 4, 5])
    with pytest.raises(DataError, match="category id 1: 'keypoints' must be a list of names"):
        people(tmp_path).records("val")
