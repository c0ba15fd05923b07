"""Detection presets: bbox-, mask- and keypoint-aware pipelines. Images come out in ``[0, 1]``.

=====================  ===========================================================================
``detection_eval``     Letterbox to the datamodule's square image size (resize the longest side,
                       pad bottom/right with black), when it has one; scale to ``[0, 1]``.
``detection_train``    Letterbox, then scale jitter 0.75-1.25 with small shifts (p=0.5),
                       horizontal flip (p=0.5), color jitter (p=0.5); boxes that keep less than
                       25% of their area are dropped; scale to ``[0, 1]``.
=====================  ===========================================================================

The detection datamodules build their :class:`TransformContext` with :func:`detection_context`:
mean 0 and std 1 (torchvision detectors normalize with their own statistics), ``bbox_params``
for XYXY pixel boxes that carry their index (so labels, masks and keypoints follow the boxes that
survive), ``keypoint_params``, and a seed. Every geometric transform moves image, boxes, masks
and keypoints with the same sampled parameters. Keypoints keep their order under flips (no
left/right swap).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import albumentations as A
import numpy as np

from visionflow.datamodules.transforms import TransformContext
from visionflow.registry import TRANSFORMS

FAMILY = "detection"
BOX_INDEX_FIELD = "box_indices"
TRAIN_MIN_VISIBILITY = 0.25
PAD_BORDER = 0  # cv2.BORDER_CONSTANT


def detection_context(image_size: int | None, seed: int | None = None) -> TransformContext:
    """The context of a detection pipeline: a square output of ``image_size`` (or the source
    size), identity normalization, bbox/keypoint parameters and the Compose seed."""
    return TransformContext(
        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
        image_size=None if image_size is None else (image_size, image_size),
        compose_kwargs={
            "bbox_params": A.BboxParams(format="pascal_voc", label_fields=[BOX_INDEX_FIELD],
                                        clip=True),
            "keypoint_params": A.KeypointParams(format="xy", remove_invisible=False),
            "seed": seed,
        })


@dataclass
class TransformedSample:
    """A transformed image float32 [H, W, C]; the M surviving boxes [M, 4] XYXY, their input
    indices ``kept`` int64 [M], masks uint8 [M, H, W] and keypoints float32 [M, K, 3]."""

    image: np.ndarray
    boxes: np.ndarray
    kept: np.ndarray
    masks: np.ndarray | None = None
    keypoints: np.ndarray | None = None


def apply_detection_transform(transform: A.Compose, image: np.ndarray, boxes: np.ndarray,
                              masks: np.ndarray | None = None,
                              keypoints: np.ndarray | None = None) -> TransformedSample:
    """Run ``transform`` on uint8 ``image`` [H, W, C] with ``boxes`` [N, 4] XYXY pixels and
    optional ``masks`` [N, H, W] and ``keypoints`` [N, K, 3] (x, y, visibility)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    count = len(boxes)
    points = np.zeros((0, 2), np.float32) if keypoints is None else keypoints[..., :2].reshape(-1, 2)
    inputs: dict[str, Any] = {"image": image, "bboxes": boxes, "keypoints": points,
                              BOX_INDEX_FIELD: np.arange(count)}
    if masks is not None and count:
        inputs["masks"] = masks
    out = transform(**inputs)
    kept = np.asarray(out[BOX_INDEX_FIELD], dtype=np.int64).reshape(-1)
    pixels = out["image"]
    height, width = pixels.shape[:2]
    result = TransformedSample(to_float_image(pixels),
                               np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4), kept)
    if masks is not None:
        moved = np.asarray(out["masks"], dtype=np.uint8) if count else np.zeros((0, height, width))
        result.masks = moved.reshape(-1, height, width)[kept].astype(np.uint8)
    if keypoints is not None:
        result.keypoints = moved_keypoints(keypoints, out["keypoints"], height, width)[kept]
    return result


def to_float_image(pixels: np.ndarray) -> np.ndarray:
    """float32 [H, W, C]: uint8 pipelines (no normalize step) are scaled to ``[0, 1]``."""
    pixels = pixels if pixels.ndim == 3 else pixels[..., None]
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    return pixels.astype(np.float32, copy=False)


def moved_keypoints(keypoints: np.ndarray, moved_xy: Any, height: int, width: int) -> np.ndarray:
    """float32 [N, K, 3]: the moved x, y with the input visibility, 0 where a point left the image."""
    result = np.asarray(keypoints, dtype=np.float32).copy()
    xy = np.asarray(moved_xy, dtype=np.float32).reshape(result.shape[:-1] + (2,))
    result[..., :2] = xy
    outside = (xy[..., 0] < 0) | (xy[..., 1] < 0) | (xy[..., 0] >= width) | (xy[..., 1] >= height)
    result[..., 2] = np.where(outside, 0.0, result[..., 2])
    return result


def letterbox(context: TransformContext) -> list[Any]:
    """Resize the longest side to the target size and pad bottom/right to a square; [] without one."""
    if context.image_size is None:
        return []
    height, width = context.image_size
    return [A.LongestMaxSize(max_size=max(height, width)),
            A.PadIfNeeded(min_height=height, min_width=width, position="top_left",
                          border_mode=PAD_BORDER, fill=0, fill_mask=0)]


def to_unit_range(context: TransformContext) -> A.Normalize:
    return A.Normalize(mean=context.mean, std=context.std, max_pixel_value=255.0)


def with_min_visibility(context: TransformContext, min_visibility: float) -> TransformContext:
    """A copy of ``context`` whose ``bbox_params`` drop boxes that keep less than ``min_visibility``
    of their area."""
    kwargs = dict(context.compose_kwargs)
    if "bbox_params" in kwargs:
        kwargs["bbox_params"] = copy.copy(kwargs["bbox_params"])
        kwargs["bbox_params"].min_visibility = min_visibility
    return dataclasses.replace(context, compose_kwargs=kwargs)


@TRANSFORMS.register("detection_eval", family=FAMILY)
def detection_eval(context: TransformContext) -> A.Compose:
    """Letterbox to the datamodule's image size (if any), scale to [0, 1] (no augmentation)."""
    return context.compose([*letterbox(context), to_unit_range(context)])


@TRANSFORMS.register("detection_train", family=FAMILY)
def detection_train(context: TransformContext) -> A.Compose:
    """Letterbox, scale jitter + shifts, horizontal flip, color jitter; drop boxes mostly cut off."""
    return with_min_visibility(context, TRAIN_MIN_VISIBILITY).compose([
        *letterbox(context),
        A.Affine(scale=(0.75, 1.25), translate_percent=(-0.1, 0.1), border_mode=PAD_BORDER,
                 fill=0, fill_mask=0, p=0.5),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
        to_unit_range(context),
    ])
