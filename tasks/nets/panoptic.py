"""Panoptic FPN (Kirillov et al., 2019): a Mask R-CNN of the detection family for things and a
semantic FPN head for stuff, both on the same FPN features.

    net = PanopticFPN(num_things=3, num_stuff=2, image_size=(128, 128))
    net = PanopticFPN(3, 2, (128, 128), "maskrcnn_resnet50_fpn", anchor_sizes=[[16], ...])
    losses, detections, stuff_logits = net(images, targets)  # targets only when training

The Mask R-CNN comes from :func:`~visionflow.tasks.nets.detectors.build_detector`: ``detector``
names an entry that predicts masks (default ``maskrcnn_resnet18_fpn``, the light one for 64-128 px
images, trained from scratch with ordinary BatchNorm) or its backbone (``resnet18`` means
``maskrcnn_resnet18_fpn``: what the panoptic task's ``backbone`` option passes); further keyword
arguments are the builder's (anchors, thresholds, ``model_kwargs``). Images arrive already
normalized and at their final size: the R-CNN transform neither rescales nor renormalizes them
(it only pads).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.nets.detectors import build_detector
from visionflow.tasks.nets.families import DETECTION_NETS

DEFAULT_DETECTOR = "maskrcnn_resnet18_fpn"
#: The R-CNN transform's normalization, switched off: the images come normalized.
NO_NORMALIZATION = {"image_mean": [0.0, 0.0, 0.0], "image_std": [1.0, 1.0, 1.0]}


def mask_detector(detector: str) -> str:
    """The detection family's Mask R-CNN entry that ``detector`` names, itself or by backbone."""
    entries = [
        n for n in DETECTION_NETS.names() if DETECTION_NETS.get(n).tags.get("predicts") == "masks"
    ]
    name = detector if detector in entries else f"maskrcnn_{detector}_fpn"
    if name not in entries:
        raise SpecError(
            f"detector: {detector!r} is neither a Mask R-CNN entry of the detection family nor "
            "the backbone of one",
            hint="use one of: " + ", ".join(entries),
        )
    return name


class SemanticFPNHead(nn.Module):
    """FPN levels ``{name: [B, C, H / s, W / s]}`` (finest first) -> logits ``[B, K, H / s0, W / s0]``
    at the finest level's scale: each level goes through conv-GroupNorm-ReLU, is upsampled to the
    finest level, the levels are summed and a 1x1 conv predicts the ``K`` classes."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 64, levels: int = 4):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                nn.GroupNorm(min(32, channels), channels),
                nn.ReLU(inplace=True),
            )
            for _ in range(levels)
        )
        self.predictor = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: OrderedDict[str, torch.Tensor]) -> torch.Tensor:
        maps = list(features.values())[: len(self.blocks)]
        size = maps[0].shape[-2:]
        summed = sum(
            F.interpolate(block(level), size=size, mode="bilinear", align_corners=False)
            for block, level in zip(self.blocks, maps)
        )
        return self.predictor(summed)


class PanopticFPN(nn.Module):
    """``images`` float32 ``[B, 3, H, W]`` (normalized) and, when training, torchvision target
    dicts (``boxes`` ``[N, 4]`` XYXY, ``labels`` ``[N]`` in 1..num_things, ``masks`` uint8
    ``[N, H, W]``) -> ``(losses, detections, stuff_logits)``: the R-CNN losses (empty in eval),
    per image ``{boxes, labels, scores, masks [N, 1, H, W]}`` (empty when training) and semantic
    logits ``[B, 1 + num_stuff, H, W]`` (class 0: any thing, ``1 + s``: stuff class ``s``)."""

    def __init__(
        self,
        num_things: int,
        num_stuff: int,
        image_size: tuple[int, int],
        detector: str = DEFAULT_DETECTOR,
        semantic_channels: int = 64,
        **detector_args: Any,
    ):
        super().__init__()
        if num_things < 1 or num_stuff < 1:
            raise SpecError(
                f"num_things / num_stuff: need at least one of each, got {num_things} and {num_stuff}"
            )
        model_kwargs = {**NO_NORMALIZATION, **detector_args.pop("model_kwargs", {})}
        self.instance = build_detector(
            mask_detector(detector),
            num_classes=num_things + 1,
            min_size=min(image_size),
            max_size=max(image_size),
            model_kwargs=model_kwargs,
            **detector_args,
        )
        self.semantic_head = SemanticFPNHead(
            self.instance.backbone.out_channels, num_stuff + 1, semantic_channels
        )

    def forward(
        self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None
    ) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]], torch.Tensor]:
        rcnn = self.instance
        original_sizes = [tuple(images.shape[-2:])] * len(images)
        padded, targets = rcnn.transform(list(images), targets)
        features = rcnn.backbone(padded.tensors)
        proposals, rpn_losses = rcnn.rpn(padded, features, targets)
        detections, roi_losses = rcnn.roi_heads(features, proposals, padded.image_sizes, targets)
        detections = rcnn.transform.postprocess(detections, padded.image_sizes, original_sizes)
        logits = F.interpolate(
            self.semantic_head(features),
            size=padded.tensors.shape[-2:],
            mode="bilinear",
            align_corners=False,
        )
        height, width = padded.image_sizes[0]
        logits = F.interpolate(
            logits[..., :height, :width],
            size=images.shape[-2:],
            mode="bilinear",
            align_corners=False,
        )
        return {**rpn_losses, **roi_losses}, detections, logits
