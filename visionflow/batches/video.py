"""Video classification batches: clips ``[B, C, T, H, W]``, optionally with stacked optical flow."""

from __future__ import annotations

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
    """``clips`` float32 ``[B, C, T, H, W]`` normalized; ``targets`` int64 ``[B]``;
    ``video_index`` int64 ``[B]``: which video of the split each clip comes from (several clips
    of one video are scored together for video accuracy); ``flows`` float32 ``[B, 2L, H, W]``
    (x, y of flow field 0, then of field 1, ...; pixels per frame) or None.

    ``clips, targets = batch`` unpacks it."""

    clips: torch.Tensor
    targets: torch.Tensor
    video_index: torch.Tensor
    flows: torch.Tensor | None = None

    unpacked = ("clips", "targets")
    info_type = VideoDatasetInfo
