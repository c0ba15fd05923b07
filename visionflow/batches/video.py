"""Video classification batches: clips ``[B, C, T, H, W]``, optionally with stacked optical flow."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from visionflow.batches.core import Batch, DatasetInfo


@dataclass(frozen=True)
class VideoDatasetInfo(DatasetInfo):
    """``DatasetInfo`` plus the clip shape: ``clip_length`` frames T per clip and
    ``flow_frames`` L flow fields stacked per clip (0: the data gives no flow)."""

    clip_length: int = 8
    flow_frames: int = 0


@dataclass
class VideoBatch(Batch):
    """``clips`` ``[B, C, T, H, W]``: float32 normalized, or (as the loaders deliver them) uint8
    pixel levels with ``normalization``, float32 ``[2, C]`` (each channel's mean level and the
    reciprocal of its standard deviation in levels), which :meth:`normalized` applies where the
    batch is, on the device: a quarter of the bytes between processes and to the device, and
    no float work in the loader. ``targets`` int64 ``[B]``; ``video_index`` int64 ``[B]``:
    which video of the split each clip comes from (several clips of one video are scored
    together for video accuracy); ``flows`` float32 ``[B, 2L, H, W]`` (x, y of flow field 0,
    then of field 1, ...; pixels per frame) or None."""

    clips: torch.Tensor
    targets: torch.Tensor
    video_index: torch.Tensor
    flows: torch.Tensor | None = None
    normalization: torch.Tensor | None = None

    info_type = VideoDatasetInfo

    def normalized(self) -> VideoBatch:
        """This batch with float32 normalized ``clips`` (itself when they already are)."""
        if self.normalization is None:
            return self
        return dataclasses.replace(
            self, clips=normalize_levels(self.clips, self.normalization), normalization=None
        )


def normalize_levels(levels: torch.Tensor, normalization: torch.Tensor) -> torch.Tensor:
    """float32 ``(levels - mean) * inverse_std`` of uint8 ``levels`` ``[B, C, T, H, W]`` with
    ``normalization = [mean, inverse_std]`` float32 ``[2, C]`` (albumentations' Normalize of
    each level, in its order of float32 operations, so the same values bit for bit)."""
    mean, inverse_std = normalization.reshape(2, 1, -1, 1, 1, 1)
    return (levels.float() - mean) * inverse_std
