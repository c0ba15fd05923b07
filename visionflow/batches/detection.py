"""Object detection batches: a list of images of any size, one :class:`DetectionTarget` each."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from visionflow.batches.core import Batch, DatasetInfo


@dataclass(frozen=True)
class DetectionDatasetInfo(DatasetInfo):
    """``DatasetInfo`` plus ``category_ids``: the dataset category id of each contiguous label,
    which a detection task needs to write COCO results files."""

    category_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class KeypointDatasetInfo(DetectionDatasetInfo):
    """``DetectionDatasetInfo`` plus ``keypoint_names``: the K named keypoints of every object
    (COCO ``categories[].keypoints``, e.g. ``("nose", "left_eye", ...)``), for a pose task."""

    keypoint_names: tuple[str, ...] = ()


@dataclass
class DetectionTarget:
    """Annotations of one image. ``boxes`` float32 ``[N, 4]`` XYXY absolute pixels, ``labels``
    int64 ``[N]`` contiguous class indices, ``iscrowd`` bool ``[N]``, optional ``masks`` uint8
    ``[N, H, W]``, ``image_id`` the dataset's own id (COCO ``image_id``).

    It also reads as the target dict of torchvision's detection references: ``target["boxes"]``,
    ``target.keys()``, ``target.items()`` and ``dict(target)`` give the fields that are set."""

    boxes: torch.Tensor
    labels: torch.Tensor
    image_id: int
    iscrowd: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None
    area: torch.Tensor | None = None

    def keys(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((key, getattr(self, key)) for key in self.keys())

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)


@dataclass
class DetectionBatch(Batch):
    """``images`` a list of float32 ``[C, H_i, W_i]`` (sizes may differ); one target per image.

    ``images, targets = batch`` unpacks it (targets read as torchvision's target dicts)."""

    images: list[torch.Tensor]
    targets: list[DetectionTarget] = field(default_factory=list)

    info_type = DetectionDatasetInfo
    #: the optional target fields that every target of this batch type carries
    target_fields: ClassVar[tuple[str, ...]] = ()


@dataclass
class InstanceBatch(DetectionBatch):
    """A :class:`DetectionBatch` whose every target has ``masks`` uint8 ``[N, H_i, W_i]``, one per
    box and aligned with it (instance segmentation)."""

    target_fields = ("masks",)


@dataclass
class KeypointBatch(DetectionBatch):
    """A :class:`DetectionBatch` whose every target has ``keypoints`` float32 ``[N, K, 3]`` (x, y in
    pixels, COCO visibility: 0 not labelled, 1 hidden, 2 visible), one row per box (pose)."""

    target_fields = ("keypoints",)
    info_type = KeypointDatasetInfo
