"""Video presets, and :func:`augment_clip`: one sampled set of parameters for a whole clip.

A clip's frames go through the pipeline together as albumentations' ``images`` target, so every
frame gets the same crop, flip and color change; its stacked flow ``[H, W, 2L]`` goes along as
the ``mask`` target (same geometry, no color or normalization) and is then corrected for what
the geometry did to motion: a horizontal flip negates its x channels (a vertical one its y
channels) and a resize scales them by the resize factor. Video presets keep to flips, crops,
pads and resizes, whose effect on flow is exactly that; rotations would need the flow rotated.
Resize, color jitter and the flip run on the whole clip at once (:class:`ClipResize`,
:class:`ClipColorJitter`, :class:`ClipHorizontalFlip`: albumentations' transforms, their
parameters and their pixels, without their per-frame call chains or slow copies). The presets
resize by area averaging (``INTER_AREA``), and a leading resize is not run by albumentations:
:func:`clip_pipeline` takes it out as the size the decoder scales frames to during their RGB
conversion (:func:`~visionflow.datamodules.video_decode.read_clip`'s ``size``: swscale's area
averaging: luma within 15 levels of OpenCV's ``INTER_AREA``, mean 0.16, on demo.mp4); frames
given at another size are resized by the preset's :class:`ClipResize`. A final Normalize is not
run in the loader: :func:`clip_pipeline` takes it out, the rest stays uint8, :func:`write_levels`
writes the frames as a uint8 clip ``[C, T, H, W]`` straight into its place in the batch, and
the batch carries :attr:`ClipPipeline.normalization` for the task to apply on the device
(:class:`~visionflow.batches.VideoBatch`; the same float32 values as albumentations' Normalize).

======================  =====================================================================
``video_eval``          Resize (area averaging) to the datamodule's image size (when it
                        differs), normalize.
``video_train``         Resize, zero-pad by 1/8 of the size, random crop back (a shift), color
                        jitter (p=0.8), normalize. No flip: it would turn "moves left" into
                        "moves right" on motion-defined classes such as moving_shapes'.
``video_flip_train``    ``video_train`` plus a horizontal flip (p=0.5), for data whose classes
                        are mirror-symmetric (UCF101, Kinetics).
======================  =====================================================================
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property

import albumentations as A
import albumentations.augmentations.pixel.functional as pixel
import cv2
import numpy as np
from albucore import sz_lut

from visionflow.datamodules.transforms import (
    TransformContext,
    flatten,
    normalize_step,
    resize_steps,
    zero_pad_random_crop,
)
from visionflow.registry import TRANSFORMS

FAMILY = "video"


class ClipColorJitter(A.ColorJitter):
    """albumentations' ColorJitter (the same parameters, sampled once per clip, and the same
    pixels, bit for bit) applied to a clip ``[T, H, W, 3]`` as one image ``[T*H, W, 3]``:
    brightness, saturation and hue act on each pixel alone, so one OpenCV call does every
    frame; contrast blends each frame with its own mean grey level, as it does frame by frame.
    Other inputs (float, one channel, single images) go the per-frame way."""

    def apply_to_images(self, images: np.ndarray, *args, **params) -> np.ndarray:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            return super().apply_to_images(images, *args, **params)
        count, height, width, channels = images.shape
        frames = np.ascontiguousarray(images).reshape(count * height, width, channels)
        factors = [params["brightness"], params["contrast"], params["saturation"], params["hue"]]
        for step in params["order"]:
            if step == 1:
                frames = _adjust_contrast_per_frame(frames, count, factors[step])
            else:
                frames = self.transforms[step](frames, factors[step])
        return frames.reshape(images.shape)


def _adjust_contrast_per_frame(frames: np.ndarray, count: int, factor: float) -> np.ndarray:
    """``count`` frames stacked as ``[T*H, W, 3]``, each blended with its own mean grey level
    as albumentations' ``adjust_contrast_torchvision`` does one frame: by albucore's lookup
    table (``level * factor + mean * (1 - factor)`` in float32, clipped, truncated to uint8)."""
    if factor == 0:  # each frame its mean grey level, rounded (not truncated as below)
        return np.concatenate(
            [pixel.adjust_contrast_torchvision(frame, factor) for frame in np.split(frames, count)]
        )
    grey_row_sums = cv2.reduce(
        cv2.cvtColor(frames, cv2.COLOR_RGB2GRAY), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S
    )  # int32 [T*H, 1]: exact, as numpy's float64 mean of a frame is
    pixels_per_frame = frames.shape[0] // count * frames.shape[1]
    means = grey_row_sums.reshape(count, -1).sum(axis=1) / pixels_per_frame  # float64 [T]
    offsets = (means * (1 - factor)).astype(np.float32)  # [T]
    levels = np.arange(256, dtype=np.float32) * np.float32(factor)
    luts = np.clip(levels + offsets[:, None], 0, 255).astype(np.uint8)  # [T, 256]
    adjusted = frames.copy()
    for frame, lut in zip(adjusted.reshape(count, -1), luts, strict=True):
        sz_lut(frame, lut, inplace=True)  # albucore's lookup (cv2.LUT is 2.5x slower)
    return adjusted


class ClipHorizontalFlip(A.HorizontalFlip):
    """albumentations' HorizontalFlip of a clip ``[T, H, W, C]`` by one OpenCV flip of its rows
    ``[T*H, W, C]`` (albumentations copies numpy's flipped view, 25x slower for 3 channels)."""

    def apply_to_images(self, images: np.ndarray, **params) -> np.ndarray:
        rows = np.ascontiguousarray(images).reshape(-1, *images.shape[2:])
        return cv2.flip(rows, 1).reshape(images.shape)


class ClipResize(A.Resize):
    """albumentations' Resize of every frame of a clip ``[T, H, W, C]`` (C <= 4), each frame
    written by OpenCV straight into the output clip: the same pixels without albumentations'
    per-frame call chain and stacking copy (1.35 against 1.70 ms for 16 frames of 340x256)."""

    def apply_to_images(self, images: np.ndarray, **params) -> np.ndarray:
        if images.ndim != 4 or images.shape[-1] > 4:
            return super().apply_to_images(images, **params)
        count, height, width, channels = images.shape
        downscale = self.height < height or self.width < width
        area = self.area_for_downscale in ("image", "image_mask") and downscale
        interpolation = cv2.INTER_AREA if area else self.interpolation
        resized = np.empty((count, self.height, self.width, channels), dtype=images.dtype)
        for frame, out in zip(images, resized, strict=True):
            cv2.resize(frame, (self.width, self.height), dst=out, interpolation=interpolation)
        return resized


def _clip_resize(context: TransformContext) -> list[ClipResize]:
    """The Resize of the image presets (to the image size, or none) as a :class:`ClipResize`
    by area averaging, as the decoder scales frames (:func:`clip_pipeline`)."""
    return [
        ClipResize(height=r.height, width=r.width, interpolation=cv2.INTER_AREA)
        for r in resize_steps(context)
    ]


def _train(context: TransformContext, preset: str, flip: bool) -> A.Compose:
    height, _ = context.output_size(preset)
    pad = max(1, height // 8)
    flips = [ClipHorizontalFlip(p=0.5)] if flip else []
    return context.compose(
        [
            *_clip_resize(context),
            *zero_pad_random_crop(context, pad, preset),
            *flips,
            ClipColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.0, p=0.8),
            normalize_step(context),
        ]
    )


@TRANSFORMS.register("video_eval", family=FAMILY)
def video_eval(context: TransformContext) -> A.Compose:
    """Resize every frame to the image size, normalize."""
    return context.compose([*_clip_resize(context), normalize_step(context)])


@TRANSFORMS.register("video_train", family=FAMILY)
def video_train(context: TransformContext) -> A.Compose:
    """Resize, random shift (pad 1/8, crop back), color jitter; the same for every frame."""
    return _train(context, "video_train", flip=False)


@TRANSFORMS.register("video_flip_train", family=FAMILY)
def video_flip_train(context: TransformContext) -> A.Compose:
    """``video_train`` plus a horizontal flip (p=0.5) of every frame and of the flow."""
    return _train(context, "video_flip_train", flip=True)


@dataclass
class ClipPipeline:
    """A video pipeline split for speed: ``resize`` (a leading :class:`ClipResize`, else
    ``None``) is the size the decoder gives frames, ``augment`` (every other transform but a
    final standard ``normalize``) runs on uint8 frames, and ``normalize`` is left to the
    device (``None`` when the pipeline does not end in one)."""

    augment: A.Compose
    normalize: A.Normalize | None
    resize: ClipResize | None = None

    @property
    def decode_size(self) -> tuple[int, int] | None:
        """``(H, W)`` to read frames at (``read_clip``'s ``size``), or None: as stored."""
        return None if self.resize is None else (self.resize.height, self.resize.width)

    def set_random_seed(self, seed: int) -> None:
        self.augment.set_random_seed(seed)

    @cached_property
    def normalization(self) -> np.ndarray | None:
        """float32 ``[2, C or 1]``: ``normalize``'s mean level and reciprocal standard deviation
        in levels, as albucore computes them (None without a ``normalize``)."""
        if self.normalize is None:
            return None
        mean, denominator = self.normalize.mean_np, self.normalize.denominator
        return np.stack([np.ravel(mean), np.ravel(denominator)]).astype(np.float32)

    def keeps_levels(self, frames: np.ndarray) -> bool:
        """Whether augmented ``frames`` go into the batch as uint8 levels, normalized on the
        device (else :func:`write_clip` normalizes them in the loader)."""
        return self.normalize is not None and frames.dtype == np.uint8


def clip_pipeline(pipeline: A.Compose) -> ClipPipeline:
    """A copy of ``pipeline`` (with its own random state) for :func:`augment_clip`, split into
    a leading :class:`ClipResize`, the augmentation (it reports the transforms it applied, which
    the flow correction reads) and a final standard Normalize."""
    pipeline = copy.deepcopy(pipeline)
    pipeline.save_applied_params = True
    transforms = list(pipeline.transforms)
    resize = transforms.pop(0) if _is_leading_resize(transforms) else None
    last = transforms[-1] if transforms else None
    normalize = None
    if isinstance(last, A.Normalize) and last.normalization == "standard" and last.p >= 1:
        normalize = transforms.pop()
    pipeline.transforms = transforms
    return ClipPipeline(pipeline, normalize, resize)


def _is_leading_resize(transforms: list) -> bool:
    """Whether the pipeline starts with a :class:`ClipResize` that always runs."""
    return bool(transforms) and isinstance(transforms[0], ClipResize) and transforms[0].p >= 1


def augment_clip(
    pipeline: ClipPipeline, frames: np.ndarray, flow: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(frames [T, h, w, C], flow float32 [h, w, 2L] or None)``: uint8 frames ``[T, H, W, C]``
    (read at ``pipeline.decode_size``, else resized here) and flow ``[H', W', 2L]`` (as stored)
    through every transform but the final Normalize, with one set of sampled parameters
    (``pipeline`` from :func:`clip_pipeline`); :func:`write_levels` (or :func:`write_clip`)
    then writes the frames into their place in a batch."""
    if pipeline.resize is not None:
        if frames.shape[1:3] != pipeline.decode_size:
            frames = pipeline.resize.apply_to_images(frames)
        flow = None if flow is None else _resize_flow(pipeline.resize, flow)
    if flow is None:
        return pipeline.augment(images=frames)["images"], None
    result = pipeline.augment(images=frames, mask=flow)
    flow = _correct_flow(result["mask"], pipeline.augment, result["applied_transforms"])
    return result["images"], flow


def write_levels(frames: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out`` (uint8 ``[C, T, h, w]``, contiguous) filled with uint8 ``frames`` ``[T, h, w, C]``
    by one OpenCV split of the pixels into the channel planes (4x faster than numpy's
    transposing copy)."""
    count, height, width, channels = frames.shape
    planes = [plane.reshape(count * height, width) for plane in out]
    cv2.split(np.ascontiguousarray(frames).reshape(count * height, width, channels), planes)
    return out


def write_clip(pipeline: ClipPipeline, frames: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out`` (float32 ``[C, T, h, w]``) filled with augmented ``frames`` ``[T, h, w, C]``
    after ``pipeline``'s final Normalize, if any: for frames a batch cannot carry as levels
    (:meth:`ClipPipeline.keeps_levels`)."""
    if pipeline.normalize is not None:
        frames = pipeline.normalize.apply(frames)
    out[:] = frames.transpose(3, 0, 1, 2)
    return out


def _resize_flow(resize: ClipResize, flow: np.ndarray) -> np.ndarray:
    """Flow ``[H, W, 2L]`` resized as ``resize`` resizes a mask, its x and y channels scaled by
    the resize factors."""
    height, width = flow.shape[:2]
    return _scale_flow(resize.apply_to_mask(flow), (resize.width / width, resize.height / height))


def _correct_flow(
    flow: np.ndarray, pipeline: A.Compose, applied: list[tuple[str, dict]]
) -> np.ndarray:
    """Flow ``[h, w, 2L]`` with its x/y channels negated by flips and scaled by resizes."""
    scale = np.ones(2, dtype=np.float32)  # (x, y)
    kinds = {type(t).__name__: t for t in flatten(pipeline)}  # applied lists class names
    resizes = iter(t for t in flatten(pipeline) if isinstance(t, A.Resize))
    for name, params in applied:
        if isinstance(kinds.get(name), A.HorizontalFlip):
            scale[0] = -scale[0]
        elif isinstance(kinds.get(name), A.VerticalFlip):
            scale[1] = -scale[1]
        elif isinstance(kinds.get(name), A.Resize):
            resize, (height, width) = next(resizes), params["shape"][:2]
            scale *= (resize.width / width, resize.height / height)
    return _scale_flow(flow, scale)


def _scale_flow(flow: np.ndarray, scale) -> np.ndarray:
    """float32 copy of flow ``[h, w, 2L]`` with its x channels times ``scale[0]``, y channels
    times ``scale[1]``."""
    flow = np.array(flow, dtype=np.float32)
    flow[..., 0::2] *= scale[0]
    flow[..., 1::2] *= scale[1]
    return flow
