"""Image classification batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from visionflow.batches.core import Batch, DatasetInfo


@dataclass(frozen=True)
class ClassificationDatasetInfo(DatasetInfo):
    """Adds the eval pipeline's normalization ``images = (pixels - pixel_mean) / pixel_std``
    (per channel, on the ``[0, 1]`` pixel scale; ``None``: not normalized), so that a task can
    work in pixel units (adversarial epsilons, pixel-range clamps)."""

    pixel_mean: tuple[float, ...] | None = None
    pixel_std: tuple[float, ...] | None = None


@dataclass
class ImageClassificationBatch(Batch):
    """``images`` float32 ``[B, C, H, W]``; ``targets`` int64 ``[B]`` class indices."""

    images: torch.Tensor
    targets: torch.Tensor

    info_type = ClassificationDatasetInfo
