"""Networks for the tasks, registered in ``visionflow.registry.NETS`` by the modules imported here.

A builder is ``(*, num_classes, in_channels, image_size, dropout=0.0, **net_args) -> nn.Module``
mapping images ``[B, C, H, W]`` to logits ``[B, num_classes]``, with its classifier head marked
(``transfer.mark_head``). :func:`build_net` validates ``net_args`` and the image size first, so a
bad spec fails with one line naming the key instead of a traceback from inside torch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.nets import (
    classic,
    detectors,
    families,
    generative,
    instance,
    mesh,
    occupancy,
    pixelcnn,
    pointnet,
    pointnet2,
    pointnet_seg,
    rl,
    segmentation,
    ssd,
    torchvision_nets,
    transfer,
    video,
    video3d,
    vit,
    voxels,
)
from visionflow.tasks.nets.families import CLASSIFICATION_NETS, checked_builder
from visionflow.tasks.nets.transfer import replace_head, split_backbone_head

COMMON_ARGS = ("num_classes", "in_channels", "image_size", "dropout")

__all__ = [
    "COMMON_ARGS",
    "build_net",
    "classic",
    "detectors",
    "families",
    "generative",
    "mesh",
    "occupancy",
    "pixelcnn",
    "instance",
    "pointnet",
    "pointnet2",
    "pointnet_seg",
    "replace_head",
    "rl",
    "segmentation",
    "split_backbone_head",
    "ssd",
    "torchvision_nets",
    "transfer",
    "video",
    "video3d",
    "vit",
    "voxels",
]


def build_net(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: list[int] | tuple[int, int] | None,
    dropout: float = 0.0,
    net_args: dict[str, Any] | None = None,
    key: str = "net",
) -> nn.Module:
    """Build the registered net ``name``; errors name ``key`` (the task's spec key for the net)
    or ``<key>_args.<name>``."""
    net_args = dict(net_args or {})
    builder = checked_builder(CLASSIFICATION_NETS, name, net_args, len(COMMON_ARGS), key=key)
    model = builder(
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        dropout=dropout,
        **net_args,
    )
    if image_size is not None:
        check_input_size(model, name, in_channels, tuple(image_size))
    return model


def check_input_size(
    model: nn.Module, name: str, in_channels: int, image_size: tuple[int, int]
) -> None:
    """Run ``model`` on a meta-device image ``[2, C, H, W]`` (shapes only, no compute); a network
    that cannot take that size (e.g. AlexNet at 32 px) raises a SpecError naming the image size."""
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    meta = {key: torch.empty_like(value, device="meta") for key, value in tensors.items()}
    images = torch.empty(2, in_channels, *image_size, device="meta")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            torch.func.functional_call(model, meta, (images,))
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[0]
        hint = "use larger images"
        if name in torchvision_nets.LAYOUTS:
            hint += ", or net_args.small_input: true"
        raise SpecError(
            f"image_size: net {name!r} cannot take {in_channels}x"
            f"{image_size[0]}x{image_size[1]} images ({reason})",
            hint=hint,
        ) from None
    finally:
        model.train(was_training)
