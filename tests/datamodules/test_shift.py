"""The random shift: one tensor op for the vision presets' pad-and-crop and for RL's DrQ/RAD."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from visionflow.datamodules.tensor_data import ExecutionPlan
from visionflow.datamodules.transforms import (
    TransformContext,
    build_transform,
    zero_pad_random_crop,
)
from visionflow.datamodules.transforms.shift import BatchedRandomCrop, RandomShift, shift_of
from visionflow.errors import SpecError

SIZE = (12, 12)


def context(size: tuple[int, int] = SIZE, channels: int = 1) -> TransformContext:
    return TransformContext(
        mean=(0.0,) * channels, std=(1.0,) * channels, image_size=size, source_size=size
    )


def offsets_of(shifted: torch.Tensor, image: torch.Tensor, shift: RandomShift) -> tuple:
    """The (top, left) window of the padded ``image`` [C, H, W] that ``shifted`` is."""
    height, width = image.shape[-2:]
    padded = F.pad(image[None], (shift.pad,) * 4, mode=shift.border)[0]
    for top in range(2 * shift.pad + 1):
        for left in range(2 * shift.pad + 1):
            if torch.equal(padded[:, top : top + height, left : left + width], shifted):
                return top, left
    raise AssertionError("not a window of the padded image")


def test_a_shift_keeps_leading_dimensions_and_moves_each_image_by_its_own_offset():
    images = torch.rand(3, 4, 2, *SIZE)  # [T, N, C, H, W]
    shift = RandomShift(pad=2)
    shifted = shift(images, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape
    offsets = {offsets_of(shifted[t, n], images[t, n], shift) for t in range(3) for n in range(4)}
    assert len(offsets) > 3  # not one offset for the whole batch
    assert all(0 <= top <= 4 and 0 <= left <= 4 for top, left in offsets)


def test_the_random_shift_preset_is_drq_s_replicate_pad_and_crop_back():
    assert shift_of(build_transform("random_shift", context((84, 84)), "a"), (84, 84), "a") == (
        RandomShift(4, "replicate")
    )
    assert shift_of(build_transform("random_shift", context(), "a"), SIZE, "a") == RandomShift(1)


def test_rl_and_the_vision_fast_path_shift_with_the_same_crop():
    # the presets' helper
    vision_shift = context().compose(zero_pad_random_crop(context(), 2, "digits_train"))
    rl_shift = shift_of(vision_shift, SIZE, "augmentation")
    assert rl_shift == RandomShift(2, "constant")
    (vision_crop,) = ExecutionPlan.of(vision_shift).batched  # the pad is cached, the crop batched
    assert isinstance(vision_crop, BatchedRandomCrop)
    images = torch.rand(5, 1, *SIZE)
    padded = F.pad(images, (2,) * 4)
    expected = vision_crop(padded, torch.Generator().manual_seed(3))
    assert torch.equal(rl_shift(images, torch.Generator().manual_seed(3)), expected)


@pytest.mark.parametrize(
    "transforms, message",
    [
        ([{"name": "HorizontalFlip"}], "expected a pad and a random crop"),
        (
            [
                {"name": "PadIfNeeded", "min_height": 15, "min_width": 15},
                {"name": "RandomCrop", "height": 12, "width": 12},
            ],
            "not an even pad",
        ),
        (
            [
                {"name": "PadIfNeeded", "min_height": 16, "min_width": 16},
                {"name": "RandomCrop", "height": 10, "width": 10},
            ],
            "does not crop",
        ),
        (
            [
                {"name": "PadIfNeeded", "min_height": 16, "min_width": 16, "border_mode": 4},
                {"name": "RandomCrop", "height": 12, "width": 12},
            ],
            "no tensor version",
        ),
    ],
)
def test_a_pipeline_that_is_not_a_shift_is_refused_by_name(transforms, message):
    pipeline = build_transform(transforms, context(), "augmentation")
    with pytest.raises(SpecError, match=f"augmentation: .*{message}"):
        shift_of(pipeline, SIZE, "augmentation")
