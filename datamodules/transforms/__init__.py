"""Augmentation presets: named albumentations pipelines, built from the datamodule's image facts.

A datamodule's ``transforms`` argument picks one pipeline per phase::

    transforms: {train: cifar_train, eval: cifar_eval}          # preset names
    transforms:
      train:                                                     # or a list of entries
        - {name: RandomCrop, height: 28, width: 28}              #   an albumentations transform
        - {name: HorizontalFlip, p: 0.5}
        - normalize                                              #   a preset, spliced in place

A preset is a function registered in ``visionflow.registry.TRANSFORMS`` that takes a
:class:`TransformContext` (target image size, normalization stats, channels) and returns an
``albumentations.Compose``; build it through :func:`build_transform`. Pipelines map an HWC
image (uint8) to an HWC float32 image, normalized by the preset; the datamodule turns the result
into ``[C, H, W]`` tensors. Presets live beside this file, one module per family
(``classification.py``; detection and segmentation presets come with ``bbox_params`` and masks
through :attr:`TransformContext.compose_kwargs`, so one preset list serves every target type).
The steps that several presets share are built here: :func:`normalize_step`, :func:`resize_steps`,
:func:`zero_pad_random_crop` and :func:`mild_color_jitter`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network call on import
import albumentations as A

from visionflow.errors import SpecError, UnknownNameError
from visionflow.registry import TRANSFORMS, did_you_mean

PHASES = ("train", "eval")

#: A pipeline as the spec writes it: a preset name, or a list of preset names and transform dicts.
TransformSpec = str | list


@dataclass(frozen=True)
class TransformContext:
    """What a preset needs to know about the data it transforms.

    ``image_size`` is the ``(H, W)`` the pipeline should produce (``None``: keep the source size);
    ``source_size`` the ``(H, W)`` of the stored images (``None`` when sizes vary);
    ``mean``/``std`` per channel on the ``[0, 1]`` scale; ``compose_kwargs`` go to every
    ``A.Compose`` a preset builds (``bbox_params``, ``additional_targets``, ...);
    ``mask_fill``: the value of mask pixels that a padding step adds (0 for instance masks:
    outside the object; the ignore index for label maps), so one preset serves both.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: tuple[int, int] | None = None
    source_size: tuple[int, int] | None = None
    compose_kwargs: Mapping[str, Any] = field(default_factory=dict)
    mask_fill: int = 0

    @property
    def channels(self) -> int:
        return len(self.mean)

    def compose(self, transforms: Sequence[Any]) -> A.Compose:
        """``A.Compose`` with this context's targets (bboxes, masks, ...)."""
        return A.Compose(list(transforms), **dict(self.compose_kwargs))

    def output_size(self, preset: str) -> tuple[int, int]:
        """``(H, W)`` the pipeline produces: the target size, else the source size; presets that
        need one call this and fail with a SpecError when images have neither."""
        size = self.image_size or self.source_size
        if size is None:
            raise SpecError(
                f"transform preset {preset!r} needs an image size",
                hint="give the datamodule an image_size",
            )
        return size


def build_transform(spec: TransformSpec, context: TransformContext, where: str) -> A.Compose:
    """The pipeline that ``spec`` names; ``where`` (e.g. ``"transforms.train"``) prefixes errors."""
    if isinstance(spec, str):
        return _build_preset(spec, context, where)
    if not isinstance(spec, list):
        raise SpecError(
            f"{where}: expected a preset name or a list of transforms, got {type(spec).__name__}",
            hint="e.g. cifar_train, or [{name: HorizontalFlip, p: 0.5}, normalize]",
        )
    return context.compose(
        [_build_entry(entry, context, f"{where}[{index}]") for index, entry in enumerate(spec)]
    )


def resolve_transforms(
    transforms: Mapping[str, Any] | None, defaults: Mapping[str, TransformSpec]
) -> dict[str, TransformSpec]:
    """``{"train": spec, "eval": spec}``: the datamodule's defaults overridden by ``transforms``."""
    if transforms is None:
        return dict(defaults)
    if not isinstance(transforms, Mapping):
        raise SpecError(
            f"transforms: expected a mapping with keys {' and '.join(PHASES)}, "
            f"got {type(transforms).__name__}"
        )
    for key in transforms:
        if key not in PHASES:
            raise SpecError(
                f"transforms.{key}: unknown key{did_you_mean(str(key), PHASES)}",
                hint="allowed keys: " + ", ".join(PHASES),
            )
    return {**defaults, **transforms}


def describe_transform(pipeline: A.Compose) -> dict[str, Any]:
    """The pipeline as plain data (lists, not tuples) that ``A.from_dict`` reads back."""
    return _plain(A.to_dict(pipeline))


def flatten(pipeline: Any) -> list[A.BasicTransform]:
    """The transforms of ``pipeline`` in order, with nested ``A.Compose`` opened up."""
    if isinstance(pipeline, A.Compose):
        return [leaf for child in pipeline.transforms for leaf in flatten(child)]
    return [pipeline]


def output_shape(
    pipeline: A.Compose, shape: tuple[int, int, int], where: str
) -> tuple[int, int, int]:
    """The ``(H, W, C)`` that ``pipeline`` makes of an image of ``shape``; SpecError if it fails."""
    try:
        result = pipeline(image=np.zeros(shape, dtype=np.uint8))["image"]
    except Exception as error:  # albumentations raises many kinds; all mean a bad pipeline
        raise SpecError(
            f"{where}: the pipeline fails on a {shape[0]}x{shape[1]} image with "
            f"{shape[2]} channel(s): {error}"
        ) from None
    return result.shape if result.ndim == 3 else (*result.shape, 1)


# ---------------------------------------------------------------- steps that presets share


def normalize_step(context: TransformContext) -> A.Normalize:
    """The last step of every image preset: uint8 [H, W, C] to float32 ``(x / 255 - mean) / std``
    per channel (with the detection context's mean 0 and std 1: the ``[0, 1]`` range)."""
    return A.Normalize(mean=context.mean, std=context.std, max_pixel_value=255.0)


def resize_steps(context: TransformContext) -> list[Any]:
    """``[Resize]`` to the target size, or ``[]`` without one or when the source already has it."""
    if context.image_size is None or context.image_size == context.source_size:
        return []
    height, width = context.image_size
    return [A.Resize(height=height, width=width)]


def zero_pad_random_crop(context: TransformContext, pad: int, preset: str) -> list[Any]:
    """Zero-pad by ``pad`` pixels on each side, then crop a random window of the output size."""
    height, width = context.output_size(preset)
    return [
        A.PadIfNeeded(
            min_height=height + 2 * pad, min_width=width + 2 * pad, border_mode=0, fill=0
        ),
        A.RandomCrop(height=height, width=width),
    ]


def mild_color_jitter() -> A.ColorJitter:
    """The colour augmentation of the detection and segmentation training presets: brightness,
    contrast and saturation by up to 20%, hue by 0.02, half of the time."""
    return A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5)


# ------------------------------------------------------------------------------------ internals


def _build_preset(name: str, context: TransformContext, where: str) -> A.Compose:
    try:
        entry = TRANSFORMS.get(name)
    except UnknownNameError as error:
        raise UnknownNameError(f"{where}: {error.message}", hint=error.hint) from None
    try:
        return entry.builder(context=context)
    except SpecError as error:
        raise type(error)(f"{where}: {error.message}", hint=error.hint) from None


def _build_entry(entry: Any, context: TransformContext, where: str) -> Any:
    if isinstance(entry, str):
        return _build_preset(entry, context, where)
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        raise SpecError(
            f"{where}: expected a preset name or {{name: <albumentations transform>, "
            f"...arguments}}, got {entry!r}"
        )
    name, arguments = entry["name"], {k: v for k, v in entry.items() if k != "name"}
    transform_class = _albumentations_class(name, where)
    where = f"{where} ({name})"
    _check_argument_names(transform_class, arguments, where)
    try:
        return transform_class(**_tuples(arguments))
    except (ValueError, TypeError) as error:  # pydantic's ValidationError is a ValueError
        raise SpecError(f"{where}: invalid arguments: {_first_lines(error)}") from None


def _albumentations_class(name: str, where: str) -> type:
    known = _transform_names()
    if name not in known:
        raise SpecError(
            f"{where}: unknown albumentations transform {name!r}{did_you_mean(name, known)}",
            hint="names are albumentations classes, e.g. HorizontalFlip, RandomCrop",
        )
    return getattr(A, name)


def _transform_names() -> list[str]:
    return sorted(
        n
        for n, v in vars(A).items()
        if isinstance(v, type)
        and issubclass(v, A.BasicTransform)
        and not inspect.isabstract(v)
        and n != "BasicTransform"
    )


def _check_argument_names(transform_class: type, arguments: Mapping[str, Any], where: str) -> None:
    parameters = inspect.signature(transform_class).parameters
    allowed = [n for n, p in parameters.items() if p.kind is not p.VAR_KEYWORD]
    for key in arguments:
        if key not in allowed:
            raise SpecError(
                f"{where}: unknown argument {key!r}{did_you_mean(str(key), allowed)}",
                hint="allowed arguments: " + ", ".join(allowed),
            )


def _tuples(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """YAML has lists where albumentations wants tuples (ranges, sizes, fill colors)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in arguments.items()}


def _first_lines(error: Exception, count: int = 3) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(line for line in lines[:count] if not line.startswith("For further"))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


from visionflow.datamodules.transforms import (  # noqa: E402  (after the machinery they use)
    classification,  # noqa: F401  (registers presets)
    detection,  # noqa: F401  (registers presets)
    pointcloud,  # noqa: F401  (registers presets)
    segmentation,  # noqa: F401  (registers presets)
    shift,  # noqa: F401  (registers presets)
    video,  # noqa: F401  (registers presets)
)
