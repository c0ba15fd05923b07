"""Semantic segmentation networks: a U-Net written here and torchvision's FCN, DeepLabV3 and
LR-ASPP by name.

    net = build_segmentation_net("unet", num_classes=4, in_channels=3, net_args={"depth": 3})
    logits = net(images)            # images [B, C, H, W] -> logits [B, K, H, W]

torchvision's nets return ``{"out": logits, "aux": logits}`` (``aux`` with ``aux_loss: true``,
FCN and DeepLabV3 only). Nothing downloads: torchvision's builders are called without weights
(``weights_backbone=None`` too); a local ``weights`` file is loaded by :func:`load_segmentation_weights`,
where classifier layers shaped for another number of classes stay freshly initialized.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.nets.detectors import load_detector_weights
from visionflow.tasks.nets.families import SEGMENTATION_NETS, checked_builder

COMMON_ARGS = ("num_classes", "in_channels")


def build_segmentation_net(
    name: str, *, num_classes: int, in_channels: int, net_args: dict[str, Any] | None = None
) -> nn.Module:
    """The registered segmentation net ``name``; errors name ``net`` or ``net_args.<key>``."""
    net_args = dict(net_args or {})
    builder = checked_builder(SEGMENTATION_NETS, name, net_args, len(COMMON_ARGS))
    return builder(num_classes=num_classes, in_channels=in_channels, **net_args)


def load_segmentation_weights(model: nn.Module, name: str, path: str) -> None:
    """Load a local state dict into the net ``name``; its classifier layers (tag ``class_head``)
    are re-initialized when the file was trained for another number of classes."""
    load_detector_weights(model, Path(path), SEGMENTATION_NETS.get(name).tags["class_head"])


# ------------------------------------------------------------------------------------ U-Net


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 conv + BatchNorm + ReLU layers; keeps H and W."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UpStep(nn.Module):
    """Doubles H and W of ``[B, 2c, H, W]`` features (transposed conv, or bilinear + 1x1 conv)
    to ``[B, c, 2H, 2W]``, joins the skip features ``[B, c, 2H, 2W]`` and mixes them."""

    def __init__(self, channels: int, upsampling: str):
        super().__init__()
        if upsampling == "transposed":
            self.up = nn.ConvTranspose2d(2 * channels, channels, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(2 * channels, channels, kernel_size=1),
            )
        self.mix = conv_block(2 * channels, channels)

    def forward(self, features: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        upsampled = self.up(features)
        if upsampled.shape[-2:] != skip.shape[-2:]:  # odd sizes: match the skip exactly
            upsampled = F.interpolate(
                upsampled, size=skip.shape[-2:], mode="bilinear", align_corners=False
            )
        return self.mix(torch.cat([skip, upsampled], dim=1))


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with padded convolutions: ``depth`` down/up levels,
    ``width`` channels at the first level, doubling per level. ``[B, C, H, W] -> [B, K, H, W]``
    for any H, W (sizes not divisible by ``2**depth`` are matched at every skip)."""

    def __init__(self, num_classes: int, in_channels: int, depth: int, width: int, upsampling: str):
        super().__init__()
        channels = [width * 2**level for level in range(depth + 1)]
        self.stem = conv_block(in_channels, channels[0])
        self.down = nn.ModuleList(conv_block(channels[i], channels[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(UpStep(channels[i], upsampling) for i in reversed(range(depth)))
        self.head = nn.Conv2d(channels[0], num_classes, kernel_size=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.stem(images)
        skips = []
        for block in self.down:
            skips.append(features)
            features = block(F.max_pool2d(features, 2, ceil_mode=True))
        for step, skip in zip(self.up, reversed(skips)):
            features = step(features, skip)
        return self.head(features)


@SEGMENTATION_NETS.register("unet", class_head="head")
def unet(
    *,
    num_classes: int,
    in_channels: int,
    depth: int = 4,
    width: int = 32,
    upsampling: Literal["transposed", "bilinear"] = "transposed",
) -> nn.Module:
    """U-Net written here: ``depth`` levels from ``width`` channels; transposed or bilinear upsampling."""
    if depth < 1:
        raise SpecError(f"net_args.depth: must be >= 1, got {depth}")
    if width < 1:
        raise SpecError(f"net_args.width: must be >= 1, got {width}")
    return UNet(num_classes, in_channels, depth, width, upsampling)


# ------------------------------------------------------------------------------ torchvision

TORCHVISION_NETS = {
    # name: (has an auxiliary head, layers whose shape follows num_classes)
    "fcn_resnet50": (True, ("classifier.4.", "aux_classifier.4.")),
    "fcn_resnet101": (True, ("classifier.4.", "aux_classifier.4.")),
    "deeplabv3_resnet50": (True, ("classifier.4.", "aux_classifier.4.")),
    "deeplabv3_resnet101": (True, ("classifier.4.", "aux_classifier.4.")),
    "deeplabv3_mobilenet_v3_large": (True, ("classifier.4.", "aux_classifier.4.")),
    "lraspp_mobilenet_v3_large": (
        False,
        ("classifier.low_classifier.", "classifier.high_classifier."),
    ),
}


def torchvision_builder(name: str, has_aux: bool):
    """A builder of torchvision's ``name`` without downloads; ``aux_loss`` where it has one."""

    def build(*, num_classes: int, in_channels: int, aux_loss: bool = False) -> nn.Module:
        from torchvision.models import segmentation

        if in_channels != 3:
            raise SpecError(
                f"in_channels: torchvision's {name} takes RGB images, got {in_channels} channel(s)",
                hint="use net: unet for other inputs",
            )
        if aux_loss and not has_aux:
            raise SpecError(f"net_args.aux_loss: {name} has no auxiliary head")
        extra = {"aux_loss": aux_loss} if has_aux else {}
        return getattr(segmentation, name)(
            weights=None, weights_backbone=None, num_classes=num_classes, **extra
        )

    build.__name__ = name
    build.__doc__ = f"torchvision's {name} (no download; local weights via the task's `weights`)."
    return build


for _name, (_has_aux, _class_head) in TORCHVISION_NETS.items():
    SEGMENTATION_NETS.add(_name, torchvision_builder(_name, _has_aux), class_head=_class_head)
