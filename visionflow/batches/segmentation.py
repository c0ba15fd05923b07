"""Semantic segmentation batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from visionflow.batches.core import Batch


@dataclass
class SegmentationBatch(Batch):
    """``images`` float32 ``[B, C, H, W]``; ``masks`` int64 ``[B, H, W]`` with ``IGNORE_INDEX``."""

    images: torch.Tensor
    masks: torch.Tensor
