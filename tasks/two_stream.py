"""Two-stream video classification (Simonyan & Zisserman, 2014): an RGB stream on the clip and
a temporal stream on its stacked optical flow ``[B, 2L, H, W]``, fused late.

    task = TwoStreamTask(num_classes=6, flow_frames=5)   # data: flow_frames: 5
    # VideoBatch(clips [B, C, T, H, W], flows [B, 2L, H, W], targets [B], video_index [B])

- RGB stream: any ``video`` net (default ``single_frame``, the paper's spatial stream, which
  averages a 2D CNN over frames); temporal stream: any ``classification`` net with
  ``2L`` input channels (default ``resnet18``).
- ``fusion: average`` averages the two streams' class probabilities (each stream trained by its
  own cross-entropy); ``fusion: learned`` adds a linear layer over both streams' logits,
  trained with its own cross-entropy too.
- ``streams: rgb`` or ``flow`` builds and trains one stream alone (the paper trains them apart).

Metrics, evaluation and plots: :class:`visionflow.tasks.video.ClipClassifier`.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from visionflow.batches import VideoBatch
from visionflow.errors import DataError, SpecError
from visionflow.registry import TASKS
from visionflow.tasks.nets import build_net
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig
from visionflow.tasks.video import VIDEO_OPTIMIZER, VIDEO_SCHEDULER, ClipClassifier


@TASKS.register("two_stream", batch=VideoBatch)
class TwoStreamTask(ClipClassifier):
    """RGB stream + optical-flow stream, fused late; see the module docstring."""

    def __init__(
        self,
        num_classes: int,
        flow_frames: int = 0,
        image_size: list[int] | None = None,
        rgb_net: str = "single_frame",
        rgb_net_args: dict[str, Any] | None = None,
        flow_net: str = "resnet18",
        flow_net_args: dict[str, Any] | None = None,
        fusion: Literal["average", "learned"] = "average",
        streams: Literal["both", "rgb", "flow"] = "both",
        optimizer: OptimizerConfig = VIDEO_OPTIMIZER,
        scheduler: SchedulerConfig = VIDEO_SCHEDULER,
        **clips: Any,
    ):
        super().__init__(optimizer, scheduler, num_classes=num_classes, **clips)
        self.save_hyperparameters()
        if streams != "rgb" and flow_frames < 1:
            raise SpecError(
                f"flow_frames: the flow stream needs optical flow, got {flow_frames}",
                hint="set the datamodule's flow_frames (e.g. 5), or streams: rgb",
            )
        if fusion == "learned" and streams != "both":
            raise SpecError(f"fusion: learned fusion needs both streams, got streams: {streams}")
        self.rgb = None if streams == "flow" else self.clip_net(rgb_net, rgb_net_args, "rgb_net")
        self.flow = (
            None
            if streams == "rgb"
            else _flow_net(
                flow_net,
                num_classes,
                2 * flow_frames,
                image_size,
                self.hparams.dropout,
                flow_net_args,
            )
        )
        self.fusion = nn.Linear(2 * num_classes, num_classes) if fusion == "learned" else None

    def forward(self, clips: torch.Tensor, flows: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """``{"rgb": [B, K], "flow": [B, K], "fused": [B, K]}`` logits of the streams built
        (``fused`` with learned fusion only)."""
        logits = {}
        if self.rgb is not None:
            logits["rgb"] = self.rgb(clips)
        if self.flow is not None:
            if flows is None:
                raise DataError(
                    "two_stream: the batch has no optical flow",
                    hint="set the datamodule's flow_frames",
                )
            logits["flow"] = self.flow(flows)
        if self.fusion is not None:
            logits["fused"] = self.fusion(torch.cat([logits["rgb"], logits["flow"]], dim=1))
        return logits

    def loss_and_scores(self, batch: VideoBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum of every stream's cross-entropy; the fused (or averaged) probabilities."""
        logits = self(batch.clips, batch.flows)
        loss = sum(self.loss_of(value, batch.targets) for value in logits.values())
        if "fused" in logits:
            return loss, logits["fused"].float().softmax(dim=-1)
        probabilities = [value.float().softmax(dim=-1) for value in logits.values()]
        return loss, torch.stack(probabilities).mean(dim=0)


def _flow_net(
    name: str,
    num_classes: int,
    channels: int,
    image_size: list[int] | None,
    dropout: float,
    net_args: dict[str, Any] | None,
) -> nn.Module:
    """A ``classification`` net on flow stacks ``[B, 2L, H, W]``; errors name ``flow_net``."""
    return build_net(
        name,
        num_classes=num_classes,
        in_channels=channels,
        image_size=image_size,
        dropout=dropout,
        net_args=net_args,
        key="flow_net",
    )
