"""Segmentation presets: mask-aware pipelines (masks move with the image, resampled nearest).

=======================  =========================================================================
``segmentation_eval``    Resize to the datamodule's image size (when it has one), normalize.
``segmentation_train``   Random scale and crop (RandomResizedCrop, 35-100% of the area) to the
                         image size, horizontal flip (p=0.5), colour jitter (p=0.5), normalize.
=======================  =========================================================================

Call a pipeline as ``pipeline(image=uint8 [H, W, C], mask=int [H, W])``; every geometric step
resamples the mask with nearest neighbour (albumentations' ``mask_interpolation`` default), so
class indices and ``IGNORE_INDEX`` stay exact. :func:`segmentation_context` gives the
datamodules' context: ImageNet statistics (what torchvision's nets expect), a seed, and
``IGNORE_INDEX`` as the fill of padded mask pixels, so a preset that pads (the ``detection_*``
letterbox and affine) marks them ignored rather than labelling them class 0.
"""

from __future__ import annotations

import albumentations as A

from visionflow.batches import IGNORE_INDEX
from visionflow.datamodules.transforms import (
    TransformContext,
    mild_color_jitter,
    normalize_step,
    resize_steps,
)
from visionflow.registry import TRANSFORMS

FAMILY = "segmentation"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TRAIN_CROP_SCALE = (0.35, 1.0)


def segmentation_context(
    image_size: tuple[int, int] | None,
    seed: int | None = None,
    source_size: tuple[int, int] | None = None,
) -> TransformContext:
    """RGB pipelines to ``image_size`` ``(H, W)`` (``None``: keep each image's size)."""
    return TransformContext(
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        image_size=image_size,
        source_size=source_size,
        compose_kwargs={"seed": seed},
        mask_fill=IGNORE_INDEX,
    )


@TRANSFORMS.register("segmentation_eval", family=FAMILY)
def segmentation_eval(context: TransformContext) -> A.Compose:
    """Resize to the image size (if any) and normalize; masks resized nearest."""
    return context.compose([*resize_steps(context), normalize_step(context)])


@TRANSFORMS.register("segmentation_train", family=FAMILY)
def segmentation_train(context: TransformContext) -> A.Compose:
    """Random scale + crop to the image size, flip, colour jitter, normalize; masks nearest."""
    size = context.output_size("segmentation_train")
    return context.compose(
        [
            A.RandomResizedCrop(size=size, scale=TRAIN_CROP_SCALE),
            A.HorizontalFlip(p=0.5),
            mild_color_jitter(),
            normalize_step(context),
        ]
    )
