"""Classification presets. Each maps an HWC uint8 image to a normalized HWC float32 image.

=====================  ===========================================================================
``normalize``          Normalize with the datamodule's mean/std; nothing else.
``resize_normalize``   Resize to the datamodule's image size (when it differs), then normalize.
``digits_eval``,       Aliases of ``resize_normalize``: the eval pipelines of the small-image
``mnist_eval``,        datamodules (digits, MNIST, Fashion-MNIST, CIFAR).
``cifar_eval``
``digits_train``       Resize, zero-pad by 1/16 of the size, random crop back (small shifts).
``mnist_train``        Resize, zero-pad by 2 px, random crop back (shifts; digits are not flipped).
``cifar_train``        Resize, zero-pad by 4 px, random crop back, horizontal flip (p=0.5).
``imagenet_train``     RandomResizedCrop(scale 0.08-1), horizontal flip, color jitter 0.4 (p=0.8).
``imagenet_eval``      Resize the short side to size/0.875, center crop to size.
=====================  ===========================================================================

Padding comes before normalization, as torchvision's ``RandomCrop(padding=4)`` does, so the pad
reads as black; the tensor datamodules keep this exact order in their cached fast path.
"""

from __future__ import annotations

import albumentations as A

from visionflow.datamodules.transforms import (
    TransformContext,
    normalize_step,
    resize_steps,
    zero_pad_random_crop,
)
from visionflow.registry import TRANSFORMS

FAMILY = "classification"


@TRANSFORMS.register("normalize", family=FAMILY)
def normalize(context: TransformContext) -> A.Compose:
    """Normalize with the datamodule's mean and std (no resize, no augmentation)."""
    return context.compose([normalize_step(context)])


@TRANSFORMS.register("resize_normalize", family=FAMILY)
def resize_normalize(context: TransformContext) -> A.Compose:
    """Resize to the datamodule's image size, then normalize (no augmentation)."""
    return context.compose([*resize_steps(context), normalize_step(context)])


for _alias in ("digits_eval", "mnist_eval", "cifar_eval"):
    TRANSFORMS.add(
        _alias,
        resize_normalize,
        family=FAMILY,
        description="Resize to the image size, then normalize (= resize_normalize).",
    )


@TRANSFORMS.register("digits_train", family=FAMILY)
def digits_train(context: TransformContext) -> A.Compose:
    """Resize, random shifts of up to 1/16 of the image size, normalize."""
    height, _ = context.output_size("digits_train")
    pad = max(1, height // 16)
    return context.compose(
        [
            *resize_steps(context),
            *zero_pad_random_crop(context, pad, "digits_train"),
            normalize_step(context),
        ]
    )


@TRANSFORMS.register("mnist_train", family=FAMILY)
def mnist_train(context: TransformContext) -> A.Compose:
    """Resize, random shifts of up to 2 pixels, normalize."""
    return context.compose(
        [
            *resize_steps(context),
            *zero_pad_random_crop(context, 2, "mnist_train"),
            normalize_step(context),
        ]
    )


@TRANSFORMS.register("cifar_train", family=FAMILY)
def cifar_train(context: TransformContext) -> A.Compose:
    """Resize, pad 4 + random crop, horizontal flip, normalize (the standard CIFAR recipe)."""
    return context.compose(
        [
            *resize_steps(context),
            *zero_pad_random_crop(context, 4, "cifar_train"),
            A.HorizontalFlip(p=0.5),
            normalize_step(context),
        ]
    )


@TRANSFORMS.register("imagenet_train", family=FAMILY)
def imagenet_train(context: TransformContext) -> A.Compose:
    """RandomResizedCrop to the image size, horizontal flip, color jitter, normalize."""
    size = context.output_size("imagenet_train")
    return context.compose(
        [
            A.RandomResizedCrop(size=size, scale=(0.08, 1.0)),
            A.HorizontalFlip(p=0.5),
            A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.0, p=0.8),
            normalize_step(context),
        ]
    )


@TRANSFORMS.register("imagenet_eval", family=FAMILY)
def imagenet_eval(context: TransformContext) -> A.Compose:
    """Resize the short side to size/0.875, center crop to the image size, normalize."""
    height, width = context.output_size("imagenet_eval")
    return context.compose(
        [
            A.SmallestMaxSize(max_size=round(max(height, width) / 0.875)),
            A.CenterCrop(height=height, width=width),
            normalize_step(context),
        ]
    )
