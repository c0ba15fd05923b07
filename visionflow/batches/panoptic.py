"""Panoptic segmentation batches: every pixel gets a class, and pixels of things an instance."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from visionflow.batches.core import Batch, DatasetInfo


@dataclass(frozen=True)
class PanopticDatasetInfo(DatasetInfo):
    """``DatasetInfo`` plus, per contiguous label, ``thing_classes`` (True: counted instances,
    False: stuff) and ``category_ids`` (the dataset's category id, for COCO panoptic files)."""

    thing_classes: tuple[bool, ...] = ()
    category_ids: tuple[int, ...] = ()


@dataclass
class PanopticTarget:
    """The panoptic ground truth of one image. ``segments`` int64 ``[H, W]``: 0 void, ``k`` the
    pixels of segment ``k`` (1..N); ``labels`` int64 ``[N]``: the contiguous label of segment
    ``k`` at index ``k - 1``; ``image_id`` the dataset's own id."""

    segments: torch.Tensor
    labels: torch.Tensor
    image_id: int

    def segment_masks(self) -> torch.Tensor:
        """bool ``[N, H, W]``: the pixels of each segment, in label order."""
        ids = torch.arange(1, len(self.labels) + 1, device=self.segments.device)
        return self.segments.unsqueeze(0) == ids[:, None, None]


@dataclass
class PanopticBatch(Batch):
    """``images`` float32 ``[B, C, H, W]``; one :class:`PanopticTarget` per image, same H, W."""

    images: torch.Tensor
    targets: list[PanopticTarget] = field(default_factory=list)

    info_type = PanopticDatasetInfo
