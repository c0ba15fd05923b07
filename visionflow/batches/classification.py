"""Image classification batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from visionflow.batches.core import Batch


@dataclass
class ImageClassificationBatch(Batch):
    """``images`` float32 ``[B, C, H, W]``; ``targets`` int64 ``[B]`` class indices.

    ``images, targets = batch`` unpacks it."""

    images: torch.Tensor
    targets: torch.Tensor

    unpacked = ("images", "targets")
