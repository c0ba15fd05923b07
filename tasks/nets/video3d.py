"""3D video networks: clips ``[B, C, T, H, W]`` to logits ``[B, K]``, heads marked.

===================  =============================================================================
``slow_fusion``      3D convolutions that halve time at every stage, so frames merge slowly
                     (Karpathy et al., 2014)
``c3d``              a small C3D (Tran et al., 2015): 3x3x3 convolutions throughout; ``non_local``
``r3d_18``,          torchvision's video ResNets (3D, mixed 3D/2D, (2+1)D convolutions), trained from
``mc3_18``,          scratch; ``blocks: 1`` gives the 10-layer versions, ``width: 16`` a
                     network 1/16 the cost (CPU examples)
``r2plus1d_18``
``i3d_resnet``       a torchvision 2D ResNet inflated to 3D (:mod:`.inflate`), from a local 2D
                     ``weights`` file when given; ``non_local`` adds blocks after layer2 and layer3
``slowfast``         a small SlowFast (Feichtenhofer et al., 2019): a slow pathway on every
                     ``alpha``-th frame, a thin fast one on all frames, lateral connections
===================  =============================================================================

``non_local: true`` inserts non-local blocks (Wang et al., 2018; embedded Gaussian, initialized
to the identity).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from visionflow.tasks.nets import transfer
from visionflow.tasks.nets.families import CLASSIFICATION_NETS, VIDEO_NETS
from visionflow.tasks.nets.inflate import inflate
from visionflow.tasks.nets.transfer import mark_head
from visionflow.tasks.nets.video import classifier


class NonLocalBlock(nn.Module):
    """``x + BN(W · softmax(θ(x)ᵀ φ(x)) g(x))`` over all ``T*H*W`` positions of ``[B, C, T, H, W]``;
    the output BN starts at zero, so the block starts as the identity."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(1, channels // 2)
        self.theta, self.phi, self.g = (nn.Conv3d(channels, inner, 1) for _ in range(3))
        self.out = nn.Sequential(nn.Conv3d(inner, channels, 1), nn.BatchNorm3d(channels))
        nn.init.zeros_(self.out[1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        query, key, value = (
            f(x).flatten(2).transpose(1, 2) for f in (self.theta, self.phi, self.g)
        )
        attended = F.scaled_dot_product_attention(query, key, value, scale=1.0)  # [B, N, I]
        return x + self.out(attended.transpose(1, 2).reshape(shape[0], -1, *shape[2:]))


def conv3d_block(inputs: int, outputs: int, kernel=(3, 3, 3), stride=(1, 1, 1)) -> nn.Sequential:
    padding = tuple(k // 2 for k in kernel)
    return nn.Sequential(
        nn.Conv3d(inputs, outputs, kernel, stride, padding, bias=False),
        nn.BatchNorm3d(outputs),
        nn.ReLU(inplace=True),
    )


class PooledHead(nn.Module):
    """``features`` then global average pooling and the head (``head.1`` is the Linear)."""

    def __init__(self, features: nn.Module, channels: int, num_classes: int, dropout: float):
        super().__init__()
        self.features = features
        self.head = classifier(channels, num_classes, dropout)
        mark_head(self, "head.1")

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(clips).mean(dim=(2, 3, 4)))


@VIDEO_NETS.register("slow_fusion")
def slow_fusion(
    *, num_classes: int, in_channels: int, clip_length: int, dropout: float = 0.0, width: int = 16
) -> nn.Module:
    """Three 3x3x3 stages, each halving time and space: frames fuse progressively."""
    stride = (2, 2, 2)
    return PooledHead(
        nn.Sequential(
            conv3d_block(in_channels, width, stride=stride),
            conv3d_block(width, 2 * width, stride=stride),
            conv3d_block(2 * width, 4 * width, stride=stride),
        ),
        4 * width,
        num_classes,
        dropout,
    )


@VIDEO_NETS.register("c3d")
def c3d(
    *,
    num_classes: int,
    in_channels: int,
    clip_length: int,
    dropout: float = 0.0,
    width: int = 16,
    non_local: bool = False,
) -> nn.Module:
    """C3D-style: four 3x3x3 stages (``width`` to ``8 * width``); the first pools space only."""
    layers = [
        conv3d_block(in_channels, width),
        nn.MaxPool3d((1, 2, 2)),
        conv3d_block(width, 2 * width),
        nn.MaxPool3d(2, ceil_mode=True),
        conv3d_block(2 * width, 4 * width),
    ]
    if non_local:
        layers.append(NonLocalBlock(4 * width))
    layers += [nn.MaxPool3d(2, ceil_mode=True), conv3d_block(4 * width, 8 * width)]
    return PooledHead(nn.Sequential(*layers), 8 * width, num_classes, dropout)


def _video_resnet(
    kind: str, num_classes: int, in_channels: int, dropout: float, blocks: int, width: int
) -> nn.Module:
    """torchvision's ``VideoResNet`` of ``kind``; ``width`` 64 (the default) is exactly
    torchvision's network, a smaller one scales every stage's channels by ``width / 64``."""
    from torchvision.models.video import resnet as video

    class ScaledVideoResNet(video.VideoResNet):
        def _make_layer(self, block, conv_builder, planes, blocks, stride=1):
            if planes == 64:  # the first stage: its input is the stem's
                self.inplanes = width
            return super()._make_layer(block, conv_builder, planes * width // 64, blocks, stride)

    def stem() -> nn.Sequential:
        if kind != "r2plus1d":
            return conv3d_block(in_channels, width, (3, 7, 7), (1, 2, 2))
        return nn.Sequential(
            *conv3d_block(in_channels, max(1, 45 * width // 64), (1, 7, 7), (1, 2, 2)),
            *conv3d_block(max(1, 45 * width // 64), width, (3, 1, 1)),
        )

    conv = {
        "r3d": [video.Conv3DSimple] * 4,
        "mc3": [video.Conv3DSimple] + [video.Conv3DNoTemporal] * 3,
        "r2plus1d": [video.Conv2Plus1D] * 4,
    }[kind]
    model = ScaledVideoResNet(video.BasicBlock, conv, [blocks] * 4, stem, num_classes=num_classes)
    model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * width, num_classes))
    nn.init.normal_(model.fc[1].weight, 0, 0.01)
    nn.init.zeros_(model.fc[1].bias)
    return mark_head(model, "fc.1")


def _register_video_resnet(kind: str) -> None:
    def build(
        *,
        num_classes: int,
        in_channels: int,
        clip_length: int,
        dropout: float = 0.0,
        blocks: int = 2,
        width: int = 64,
    ) -> nn.Module:
        return _video_resnet(kind, num_classes, in_channels, dropout, blocks, width)

    build.__name__ = build.__qualname__ = f"{kind}_18"
    VIDEO_NETS.add(
        f"{kind}_18",
        build,
        description=f"torchvision {kind}_18, from scratch (net_args: blocks per stage, width)",
    )


for _kind in ("r3d", "mc3", "r2plus1d"):
    _register_video_resnet(_kind)


@VIDEO_NETS.register("i3d_resnet")
def i3d_resnet(
    *,
    num_classes: int,
    in_channels: int,
    clip_length: int,
    dropout: float = 0.0,
    arch: Literal["resnet18", "resnet34", "resnet50"] = "resnet18",
    time_kernel: int = 3,
    weights: str | None = None,
    small_input: bool = False,
    non_local: bool = False,
) -> nn.Module:
    """torchvision's 2D ``arch`` (from a local state_dict ``weights`` when given) inflated to 3D
    with ``time_kernel`` frames per kernel."""
    model = CLASSIFICATION_NETS.get(arch).builder(
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=None,
        dropout=dropout,
        small_input=small_input,
    )
    if weights:
        transfer.load_weights(model, weights, key="net_args.weights")
    inflate(model, time_kernel)
    if non_local:
        for stage in (model.layer2, model.layer3):
            norms = [m for m in stage[-1].modules() if isinstance(m, nn.BatchNorm3d)]
            stage.append(NonLocalBlock(norms[-1].num_features))
    return model


class SlowFast(nn.Module):
    """Slow pathway: every ``alpha``-th frame, ``width`` to ``4 * width`` channels, temporal
    kernels only in its last stage; fast pathway: every frame, ``width // beta`` channels,
    3x3x3 kernels throughout. After each stage a time-strided conv carries fast features into
    the slow pathway (concatenated); both are pooled and joined for the head."""

    def __init__(
        self, num_classes: int, in_channels: int, width: int, alpha: int, beta: int, dropout: float
    ):
        super().__init__()
        fast = max(2, width // beta)
        slow_in, fast_in = [in_channels, width, 2 * width], [in_channels, fast, 2 * fast]
        self.alpha = alpha
        self.slow, self.fast, self.lateral = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for stage in range(3):
            inputs = slow_in[stage] + (2 * fast_in[stage] if stage else 0)
            time = 3 if stage == 2 else 1
            self.slow.append(
                conv3d_block(
                    inputs, slow_in[stage + 1] if stage < 2 else 4 * width, (time, 3, 3), (1, 2, 2)
                )
            )
            outputs = fast_in[stage + 1] if stage < 2 else 4 * fast
            self.fast.append(conv3d_block(fast_in[stage], outputs, (3, 3, 3), (1, 2, 2)))
            if stage < 2:
                self.lateral.append(
                    nn.Conv3d(outputs, 2 * outputs, (5, 1, 1), (alpha, 1, 1), (2, 0, 0), bias=False)
                )
        self.head = classifier(4 * width + 4 * fast, num_classes, dropout)
        mark_head(self, "head.1")

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        slow, fast = clips[:, :, :: self.alpha], clips  # [B, C, T/a, H, W]
        for stage in range(3):
            slow, fast = self.slow[stage](slow), self.fast[stage](fast)
            if stage < 2:
                lateral = self.lateral[stage](fast)
                slow = torch.cat([slow, lateral[:, :, : slow.shape[2]]], dim=1)
        features = torch.cat([slow.mean(dim=(2, 3, 4)), fast.mean(dim=(2, 3, 4))], dim=1)
        return self.head(features)


@VIDEO_NETS.register("slowfast")
def slowfast(
    *,
    num_classes: int,
    in_channels: int,
    clip_length: int,
    dropout: float = 0.0,
    width: int = 16,
    alpha: int = 4,
    beta: int = 4,
) -> nn.Module:
    """A small SlowFast: slow pathway on every ``alpha``-th frame, fast one ``beta`` x thinner."""
    return SlowFast(num_classes, in_channels, width, alpha, beta, dropout)
