"""Video networks built from 2D frame encoders: the fusion baselines of Karpathy et al. (2014)
and CNN + LSTM. Every builder maps clips ``[B, C, T, H, W]`` to logits ``[B, K]`` and takes
``(*, num_classes, in_channels, clip_length, dropout, **net_args)``; its classifier head is
marked (``transfer.mark_head``). 3D networks: :mod:`visionflow.tasks.nets.video3d`.

=================  ===============================================================================
``single_frame``   a 2D CNN on every frame, logits averaged over frames (the baseline)
``late_fusion``    the 2D CNN on the first and last frames, features concatenated, then the head
``early_fusion``   the clip's frames stacked as channels ``[B, C*T, H, W]`` into one 2D CNN
``cnn_lstm``       the 2D CNN on every frame, an LSTM over the frame features, head on its last state
=================  ===============================================================================
"""

from __future__ import annotations

import torch
from torch import nn

from visionflow.tasks.nets.families import VIDEO_NETS
from visionflow.tasks.nets.transfer import mark_head


def frame_encoder(in_channels: int, width: int) -> nn.Sequential:
    """Images ``[N, C, H, W] -> features [N, 4 * width]``: three conv-BN-ReLU stages (the first
    two halve the size) and global average pooling."""

    def stage(inputs: int, outputs: int, pool: bool) -> list[nn.Module]:
        layers = [
            nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(inplace=True),
        ]
        return layers + ([nn.MaxPool2d(2)] if pool else [])

    return nn.Sequential(
        *stage(in_channels, width, True),
        *stage(width, 2 * width, True),
        *stage(2 * width, 4 * width, False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def classifier(features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """``[B, features] -> [B, K]``; index 1 is the Linear (the marked head)."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_classes))


class FrameModel(nn.Module):
    """Encodes the frames ``frames`` picks from the clip with one 2D CNN; ``combine`` turns
    their features ``[B, T', F]`` into ``[B, F']`` for the head."""

    def __init__(self, encoder: nn.Module, head: nn.Module, combine: str, frames: str = "all"):
        super().__init__()
        self.encoder, self.head, self.combine, self.frames = encoder, head, combine, frames
        mark_head(self, "head.1")

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if self.frames == "ends":
            clips = clips[:, :, [0, -1]]
        batch, channels, time = clips.shape[:3]
        images = clips.transpose(1, 2).reshape(batch * time, channels, *clips.shape[3:])
        features = self.encoder(images).view(batch, time, -1)  # [B, T', F]
        if self.combine == "average":
            return self.head(features).mean(dim=1)  # [B, K]
        return self.head(features.flatten(1))  # [B, T' * F]


class EarlyFusion(nn.Module):
    """The clip's frames as the channels of one image ``[B, C*T, H, W]``."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head
        mark_head(self, "head.1")

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(clips.flatten(1, 2)))


class CNNLSTM(nn.Module):
    """Frame features ``[B, T, F]`` through an LSTM; the head reads its last hidden state."""

    def __init__(self, encoder: nn.Module, features: int, hidden: int, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        mark_head(self, "head.1")

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        batch, channels, time = clips.shape[:3]
        images = clips.transpose(1, 2).reshape(batch * time, channels, *clips.shape[3:])
        features = self.encoder(images).view(batch, time, -1)  # [B, T, F]
        _, (hidden, _) = self.lstm(features)  # [1, B, hidden]
        return self.head(hidden[-1])


@VIDEO_NETS.register("single_frame")
def single_frame(
    *, num_classes: int, in_channels: int, clip_length: int, dropout: float = 0.0, width: int = 16
) -> nn.Module:
    """A 2D CNN (``width`` channels in its first stage) on every frame; logits averaged."""
    return FrameModel(
        frame_encoder(in_channels, width), classifier(4 * width, num_classes, dropout), "average"
    )


@VIDEO_NETS.register("late_fusion")
def late_fusion(
    *, num_classes: int, in_channels: int, clip_length: int, dropout: float = 0.0, width: int = 16
) -> nn.Module:
    """One 2D CNN on the first and the last frame; their features concatenated into the head."""
    return FrameModel(
        frame_encoder(in_channels, width),
        classifier(8 * width, num_classes, dropout),
        "concatenate",
        frames="ends",
    )


@VIDEO_NETS.register("early_fusion")
def early_fusion(
    *, num_classes: int, in_channels: int, clip_length: int, dropout: float = 0.0, width: int = 16
) -> nn.Module:
    """A 2D CNN whose first layer sees all ``clip_length`` frames stacked as channels."""
    return EarlyFusion(
        frame_encoder(in_channels * clip_length, width), classifier(4 * width, num_classes, dropout)
    )


@VIDEO_NETS.register("cnn_lstm")
def cnn_lstm(
    *,
    num_classes: int,
    in_channels: int,
    clip_length: int,
    dropout: float = 0.0,
    width: int = 16,
    hidden: int = 64,
) -> nn.Module:
    """A 2D CNN on every frame and an LSTM of ``hidden`` units over the frame features."""
    return CNNLSTM(
        frame_encoder(in_channels, width),
        4 * width,
        hidden,
        classifier(hidden, num_classes, dropout),
    )
