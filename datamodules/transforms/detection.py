"""Detection presets: bbox-, mask- and keypoint-aware pipelines. Images come out in ``[0, 1]``.

=====================  ===========================================================================
``detection_eval``     Letterbox to the datamodule's square image size (resize the longest side,
                       pad bottom/right with black), when it has one; scale to ``[0, 1]``.
``detection_train``    Letterbox, then scale jitter 0.75-1.25 with small shifts (p=0.5),
                       horizontal flip (p=0.5), color jitter (p=0.5); boxes that keep less than
                       25% of their area are dropped; scale to ``[0, 1]``.
=====================  ===========================================================================

Padding fills masks with the context's ``mask_fill``: 0 for the detection datamodules' instance
masks, the ignore index for semantic and panoptic label maps (:mod:`.segmentation`'s context), so
these presets serve segmentation data too.

The detection datamodules build their :class:`TransformContext` with :func:`detection_context`:
mean 0 and std 1 (torchvision detectors normalize with their own statistics), ``bbox_params``
for XYXY pixel boxes that carry their index (so labels, masks and keypoints follow the boxes that
survive), ``keypoint_params``, a seed, and ``save_applied_params`` (so we know which flips ran).
Every geometric transform moves image, boxes, masks and keypoints with the same sampled
parameters.

Named keypoints swap sides in a mirror image: after a horizontal flip a person's ``left_eye``
lies where the right eye was drawn. albumentations 2.0.8 moves the points but keeps their order
(``KeypointParams(label_mapping=...)`` only arrives in AlbumentationsX 2.0.12), so
:func:`apply_detection_transform` swaps every ``left_X``/``right_X`` pair itself (x, y and
visibility together) when the applied transforms mirrored the image: an odd number of
reflections (HorizontalFlip, VerticalFlip, Transpose, the mirroring elements of D4 and
SquareSymmetry). Two flips make a 180-degree rotation, which keeps left and right.

Keypoints are continuous pixel coordinates, as the boxes are: a pixel spans ``[x, x + 1]``, so a
flip maps ``x`` to ``W - x`` (torchvision's references do the same). albumentations 2.0.8 moves
them so in its resizes, crops and pads, but as pixel indices (a pixel's centre at integer ``x``)
in its flips, 90-degree rotations and affine warps (``PIXEL_INDEX_STEPS``: a flip gives
``W - 1 - x``, a pixel off the image and the box); :func:`with_continuous_keypoints` runs those
steps' keypoint function half a pixel shifted into their frame and back.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import albumentations as A
import numpy as np

from visionflow.datamodules.transforms import (
    TransformContext,
    mild_color_jitter,
    normalize_step,
)
from visionflow.registry import TRANSFORMS

FAMILY = "detection"
BOX_INDEX_FIELD = "box_indices"
TRAIN_MIN_VISIBILITY = 0.25
PAD_BORDER = 0  # cv2.BORDER_CONSTANT
MIRRORS = frozenset({"HorizontalFlip", "VerticalFlip", "Transpose"})
SYMMETRY_GROUPS = frozenset({"D4", "SquareSymmetry"})  # their params name a ``group_element``
MIRROR_ELEMENTS = frozenset({"h", "v", "t", "hvt"})  # the reflections among D4's eight
SIDES = ("left_", "right_")
#: albumentations steps that move keypoints as pixel indices (the rest: continuous coordinates)
PIXEL_INDEX_STEPS = frozenset(
    {
        "HorizontalFlip",
        "VerticalFlip",
        "RandomRotate90",
        "D4",
        "SquareSymmetry",
        "Affine",
        "ShiftScaleRotate",
        "Rotate",
    }
)
HALF_PIXEL = 0.5


def detection_context(image_size: int | None, seed: int | None = None) -> TransformContext:
    """The context of a detection pipeline: a square output of ``image_size`` (or the source
    size), identity normalization, bbox/keypoint parameters and the Compose seed."""
    return TransformContext(
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        image_size=None if image_size is None else (image_size, image_size),
        compose_kwargs={
            "bbox_params": A.BboxParams(
                format="pascal_voc", label_fields=[BOX_INDEX_FIELD], clip=True
            ),
            "keypoint_params": A.KeypointParams(format="xy", remove_invisible=False),
            "seed": seed,
            "save_applied_params": True,
        },
    )


@dataclass
class TransformedSample:
    """A transformed image float32 [H, W, C]; the M surviving boxes [M, 4] XYXY, their input
    indices ``kept`` int64 [M], masks uint8 [M, H, W] and keypoints float32 [M, K, 3]."""

    image: np.ndarray
    boxes: np.ndarray
    kept: np.ndarray
    masks: np.ndarray | None = None
    keypoints: np.ndarray | None = None


def apply_detection_transform(
    transform: A.Compose,
    image: np.ndarray,
    boxes: np.ndarray,
    masks: np.ndarray | None = None,
    keypoints: np.ndarray | None = None,
    mirror_orders: np.ndarray | None = None,
) -> TransformedSample:
    """Run ``transform`` on uint8 ``image`` [H, W, C] with ``boxes`` [N, 4] XYXY pixels and
    optional ``masks`` [N, H, W] and ``keypoints`` [N, K, 3] (x, y, visibility).

    ``mirror_orders`` int64 [N, K] (see :func:`annotation_mirror_orders`): where each keypoint is
    taken from when the transform mirrored the image; ``None``: keypoints keep their order."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    count = len(boxes)
    points = (
        np.zeros((0, 2), np.float32) if keypoints is None else keypoints[..., :2].reshape(-1, 2)
    )
    inputs: dict[str, Any] = {
        "image": image,
        "bboxes": boxes,
        "keypoints": points,
        BOX_INDEX_FIELD: np.arange(count),
    }
    if masks is not None and count:
        inputs["masks"] = masks
    if keypoints is not None:
        with_continuous_keypoints(transform)
    out = transform(**inputs)
    kept = np.asarray(out[BOX_INDEX_FIELD], dtype=np.int64).reshape(-1)
    pixels = out["image"]
    height, width = pixels.shape[:2]
    result = TransformedSample(
        to_float_image(pixels), np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4), kept
    )
    if masks is not None:
        moved = np.asarray(out["masks"], dtype=np.uint8) if count else np.zeros((0, height, width))
        result.masks = moved.reshape(-1, height, width)[kept].astype(np.uint8)
    if keypoints is not None:
        moved_points = moved_keypoints(keypoints, out["keypoints"], height, width)
        if mirror_orders is not None and is_mirrored(applied_transforms(out)):
            moved_points = np.take_along_axis(moved_points, mirror_orders[..., None], axis=1)
        result.keypoints = moved_points[kept]
    return result


class PixelIndexKeypoints:
    """A step's keypoint function ``move`` (keypoints float [P, 2+] -> [P, 2+], albumentations'
    pixel-index frame) run on continuous coordinates: shifted by half a pixel there and back."""

    def __init__(self, move: Any):
        self.move = move

    def __call__(self, keypoints: np.ndarray, **params: Any) -> np.ndarray:
        moved = self.move(shifted_xy(keypoints, -HALF_PIXEL), **params)
        return shifted_xy(moved, HALF_PIXEL)


def shifted_xy(keypoints: np.ndarray, offset: float) -> np.ndarray:
    """A copy of keypoints [P, 2+] with ``offset`` added to x and y (other columns kept)."""
    result = np.array(keypoints, copy=True)
    result[:, :2] += offset
    return result


def with_continuous_keypoints(transform: Any) -> None:
    """Make every ``PIXEL_INDEX_STEPS`` step in ``transform`` (nested ones too) move keypoints
    as continuous coordinates; a step already made so is left alone."""
    for step in leaf_steps(transform):
        functions = getattr(step, "_key2func", {})  # albumentations: target name -> function
        move = functions.get("keypoints")
        if type(step).__name__ in PIXEL_INDEX_STEPS and move is not None:
            if not isinstance(move, PixelIndexKeypoints):
                functions["keypoints"] = PixelIndexKeypoints(move)


def leaf_steps(transform: Any) -> list[Any]:
    """The transforms of ``transform`` with every composition (Compose, OneOf, ...) opened up."""
    if isinstance(transform, A.BaseCompose):
        return [leaf for child in transform.transforms for leaf in leaf_steps(child)]
    return [transform]


def applied_transforms(out: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(class name, params)`` of each transform that ran, from a pipeline that saves them."""
    if "applied_transforms" not in out:
        raise ValueError(
            "the pipeline does not record which transforms ran, so a flip cannot "
            "swap left and right keypoints: build it with detection_context(), or "
            "A.Compose(..., save_applied_params=True)"
        )
    return out["applied_transforms"]


def is_mirrored(applied: Sequence[tuple[str, dict[str, Any]]]) -> bool:
    """Whether ``applied`` transforms reflect the image: an odd number of mirrors."""
    mirrors = sum(
        name in MIRRORS
        or (name in SYMMETRY_GROUPS and str(params.get("group_element")) in MIRROR_ELEMENTS)
        for name, params in applied
    )
    return mirrors % 2 == 1


def mirror_order(names: Sequence[str]) -> np.ndarray:
    """int64 [K]: for each of the K keypoint ``names``, the index of the keypoint that takes its
    place in a mirror image (``left_X`` <-> ``right_X``); a name without a partner keeps its own."""
    index = {name: i for i, name in enumerate(names)}
    return np.array([index.get(partner(name), i) for i, name in enumerate(names)], dtype=np.int64)


def partner(name: str) -> str:
    """``"right_eye"`` for ``"left_eye"`` and back; any other name is its own partner."""
    for side, other in (SIDES, SIDES[::-1]):
        if name.startswith(side):
            return other + name[len(side) :]
    return name


def label_mirror_orders(keypoint_names: Sequence[Sequence[str]]) -> dict[int, np.ndarray]:
    """``{label: mirror order int64 [K]}`` of the labels whose keypoint names have a left/right
    pair (``keypoint_names[label]``, as in ``LabelMap.keypoint_names``); others are left out."""
    orders = {label: mirror_order(names) for label, names in enumerate(keypoint_names)}
    return {
        label: order for label, order in orders.items() if (order != np.arange(len(order))).any()
    }


def annotation_mirror_orders(
    by_label: dict[int, np.ndarray], labels: np.ndarray, count: int
) -> np.ndarray | None:
    """int64 [N, K]: the mirror order of the K = ``count`` keypoints of each of the N annotations
    with ``labels`` [N] (unchanged for labels not in ``by_label``); ``None`` when none swaps."""
    if not by_label or not any(int(label) in by_label for label in labels):
        return None
    orders = np.tile(np.arange(count, dtype=np.int64), (len(labels), 1))
    for row, label in enumerate(labels):
        if int(label) in by_label:
            orders[row] = by_label[int(label)]
    return orders


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
    return [
        A.LongestMaxSize(max_size=max(height, width)),
        A.PadIfNeeded(
            min_height=height,
            min_width=width,
            position="top_left",
            border_mode=PAD_BORDER,
            fill=0,
            fill_mask=context.mask_fill,
        ),
    ]


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
    return context.compose([*letterbox(context), normalize_step(context)])


@TRANSFORMS.register("detection_train", family=FAMILY)
def detection_train(context: TransformContext) -> A.Compose:
    """Letterbox, scale jitter + shifts, horizontal flip, color jitter; drop boxes mostly cut off."""
    return with_min_visibility(context, TRAIN_MIN_VISIBILITY).compose(
        [
            *letterbox(context),
            A.Affine(
                scale=(0.75, 1.25),
                translate_percent=(-0.1, 0.1),
                border_mode=PAD_BORDER,
                fill=0,
                fill_mask=context.mask_fill,
                p=0.5,
            ),
            A.HorizontalFlip(p=0.5),
            mild_color_jitter(),
            normalize_step(context),
        ]
    )
