"""Random shifts as batched tensor ops: the vision presets' pad-and-crop, and DrQ/RAD's.

The vision presets shift an image by padding it and cropping a random window of the original size
back (``digits_train``, ``mnist_train``, ``cifar_train``, ``video_train``: albumentations'
``PadIfNeeded`` then ``RandomCrop``). The tensor datamodules run that crop a batch at a time with
:class:`BatchedRandomCrop` (the pad is cached). RL learns from pixels with the same op
(:class:`RandomShift` = pad + :class:`BatchedRandomCrop`): its datamodule names a preset and
:func:`shift_of` reads the pad, the border and the window from that preset's two transforms.

======================  =====================================================================
``random_shift``        Pad by 1/21 of the height (4 px at 84 px, as DrQ), repeating the border
                        pixels, then a random crop back: shifts of up to the pad, no normalize.
======================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import albumentations as A
import torch
import torch.nn.functional as F

from visionflow.datamodules.transforms import TransformContext, flatten
from visionflow.errors import SpecError
from visionflow.registry import TRANSFORMS

FAMILY = "shift"
BORDERS = {0: "constant", 1: "replicate"}  # OpenCV border modes that F.pad has
SHIFT_HINT = "a shift preset: random_shift, or [{name: PadIfNeeded, ...}, {name: RandomCrop, ...}]"


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a small host tensor (indices, random draws) to ``device`` without stalling the GPU.

    A copy from pageable memory waits for the GPU to finish its queued work, which would cost
    a full synchronization per batch; from pinned memory it is queued like any kernel."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


@dataclass(frozen=True)
class BatchedRandomCrop:
    """A random ``height x width`` window of each image: ``[B, C, H, W] -> [B, C, h, w]``."""

    height: int
    width: int

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, _, height, width = images.shape
        top = torch.randint(0, height - self.height + 1, (batch,), generator=generator)
        left = torch.randint(0, width - self.width + 1, (batch,), generator=generator)
        device = images.device
        rows = (to_device(top, device)[:, None] + torch.arange(self.height, device=device))[
            :, :, None
        ]
        cols = (to_device(left, device)[:, None] + torch.arange(self.width, device=device))[
            :, None, :
        ]
        samples = torch.arange(batch, device=device)[:, None, None]
        crops = images[samples, :, rows, cols]  # [B, h, w, C]: advanced indices go first
        return crops.permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class RandomShift:
    """Shift each image by up to ``pad`` pixels in each direction: pad (``constant``: zeros, or
    ``replicate``: the border pixels), then a random window of the original size.
    ``[..., C, H, W] -> [..., C, H, W]``; leading dimensions (``[T, N]``) are flattened into one
    batch, so every image gets its own shift."""

    pad: int
    border: Literal["constant", "replicate"] = "replicate"

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        *leading, channels, height, width = images.shape
        flat = images.reshape(-1, channels, height, width)
        padded = F.pad(flat, (self.pad,) * 4, mode=self.border)
        return BatchedRandomCrop(height, width)(padded, generator).reshape(images.shape)


def shift_of(pipeline: A.Compose, image_size: tuple[int, int], where: str) -> RandomShift:
    """The :class:`RandomShift` that ``pipeline`` (``PadIfNeeded`` then a ``RandomCrop`` back to
    ``image_size``) applies to images of ``image_size``; SpecError naming ``where`` otherwise."""
    transforms = flatten(pipeline)
    names = [type(t).__name__ for t in transforms]
    if names != ["PadIfNeeded", "RandomCrop"]:
        raise SpecError(f"{where}: expected a pad and a random crop, got {names}", hint=SHIFT_HINT)
    pad, crop = transforms
    height, width = image_size
    pad_height, pad_width = pad.min_height - height, pad.min_width - width
    if pad.position != "center" or pad_height != pad_width or pad_height <= 0 or pad_height % 2:
        raise SpecError(
            f"{where}: PadIfNeeded to {pad.min_height}x{pad.min_width} is not an even pad of "
            f"the {height}x{width} images on every side",
            hint=SHIFT_HINT,
        )
    if (crop.height, crop.width) != (height, width):
        raise SpecError(
            f"{where}: RandomCrop to {crop.height}x{crop.width} does not crop the "
            f"{height}x{width} images back to their size",
            hint=SHIFT_HINT,
        )
    if pad.border_mode not in BORDERS or (pad.border_mode == 0 and pad.fill != 0):
        raise SpecError(
            f"{where}: PadIfNeeded border_mode {pad.border_mode} (fill {pad.fill}) has no "
            "tensor version",
            hint="border_mode 0 (constant) with fill 0, or 1 (replicate)",
        )
    return RandomShift(pad_height // 2, BORDERS[pad.border_mode])


@TRANSFORMS.register("random_shift", family=FAMILY)
def random_shift(context: TransformContext) -> A.Compose:
    """Pad by 1/21 of the height (at least 1 px), repeating the border, then a random crop back."""
    height, width = context.output_size("random_shift")
    pad = max(1, round(height / 21))
    return context.compose(
        [
            A.PadIfNeeded(min_height=height + 2 * pad, min_width=width + 2 * pad, border_mode=1),
            A.RandomCrop(height=height, width=width),
        ]
    )
