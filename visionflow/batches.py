"""The batch contracts where datamodules and tasks meet.

A datamodule yields one of these batch types and describes its data with a ``DatasetInfo``; a task
consumes a batch type. Neither imports the other, so a datamodule works in any Lightning project
and a task trains on any data that speaks its contract. The registries tag each entry with
``batch=<type>``; the spec refuses a task/datamodule pair whose types differ.

Conventions (see docs/architecture.md): images float32 ``[B, C, H, W]`` normalized by the transform
preset; boxes ``[N, 4]`` XYXY in absolute pixels; semantic masks ``[B, H, W]`` int64 with
``IGNORE_INDEX``; instance masks ``[N, H, W]`` uint8.

Batches are plain (mutable) dataclasses so Lightning's ``move_data_to_device`` handles them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

IGNORE_INDEX = 255


@dataclass(frozen=True)
class DatasetInfo:
    """What a task needs to know about the data to build itself.

    ``image_size`` is ``(H, W)`` after the eval transform, or ``None`` when sizes vary.
    """

    num_classes: int
    class_names: tuple[str, ...]
    in_channels: int
    image_size: tuple[int, int] | None = None

    def task_kwargs(self) -> dict[str, Any]:
        """Arguments every task accepts and the pipeline fills in unless the spec sets them."""
        return {
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "class_names": list(self.class_names),
        }


@dataclass
class ImageClassificationBatch:
    """``images`` float32 ``[B, C, H, W]``; ``targets`` int64 ``[B]`` class indices."""

    images: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class DetectionTarget:
    """Annotations of one image. ``boxes`` float32 ``[N, 4]`` XYXY absolute pixels, ``labels``
    int64 ``[N]`` contiguous class indices, ``iscrowd`` bool ``[N]``, optional ``masks`` uint8
    ``[N, H, W]``, ``image_id`` the dataset's own id (COCO ``image_id``)."""

    boxes: torch.Tensor
    labels: torch.Tensor
    image_id: int
    iscrowd: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None
    area: torch.Tensor | None = None


@dataclass
class DetectionBatch:
    """``images`` a list of float32 ``[C, H_i, W_i]`` (sizes may differ); one target per image."""

    images: list[torch.Tensor]
    targets: list[DetectionTarget] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class SegmentationBatch:
    """``images`` float32 ``[B, C, H, W]``; ``masks`` int64 ``[B, H, W]`` with ``IGNORE_INDEX``."""

    images: torch.Tensor
    masks: torch.Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])
