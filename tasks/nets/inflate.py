"""I3D-style inflation (Carreira & Zisserman, 2017): a 2D CNN made 3D, weights and all.

Every ``k x k`` convolution becomes ``t x k x k`` with its 2D kernel repeated ``t`` times along
time and divided by ``t``; 1 x 1 convolutions stay 1 x 1 x 1; batch norms, max pools and the
global average pool become their 3D versions (pools keep time as it is). Time is padded by
repeating the edge frames, so on a static clip (one image repeated) every frame's features are
the 2D network's on that image, and the inflated network's output equals the 2D one's: the
"boring video" check of the I3D paper, tested in tests/tasks/test_video_nets.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InflatedConv(nn.Module):
    """A ``Conv3d`` with zero padding in space (as the 2D layer had) and edge padding in time."""

    def __init__(self, conv2d: nn.Conv2d, time_kernel: int):
        super().__init__()
        time = time_kernel if max(conv2d.kernel_size) > 1 else 1
        self.time_padding = time // 2
        self.conv = nn.Conv3d(
            conv2d.in_channels,
            conv2d.out_channels,
            (time, *conv2d.kernel_size),
            stride=(1, *conv2d.stride),
            padding=(0, *conv2d.padding),
            dilation=(1, *conv2d.dilation),
            groups=conv2d.groups,
            bias=conv2d.bias is not None,
        )
        with torch.no_grad():
            self.conv.weight.copy_(conv2d.weight.unsqueeze(2).repeat(1, 1, time, 1, 1) / time)
            if conv2d.bias is not None:
                self.conv.bias.copy_(conv2d.bias)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``[B, C, T, H, W] -> [B, C', T, H', W']``."""
        pad = self.time_padding
        if pad:
            clips = F.pad(clips, (0, 0, 0, 0, pad, pad), mode="replicate")
        return self.conv(clips)


def inflate(module: nn.Module, time_kernel: int = 3) -> nn.Module:
    """``module`` with its 2D layers replaced in place by inflated 3D ones; returned."""
    for name, child in module.named_children():
        replacement = _inflated(child, time_kernel)
        if replacement is None:
            inflate(child, time_kernel)
        else:
            setattr(module, name, replacement)
    return module


def _inflated(layer: nn.Module, time_kernel: int) -> nn.Module | None:
    if isinstance(layer, nn.Conv2d):
        return InflatedConv(layer, time_kernel)
    if isinstance(layer, nn.BatchNorm2d):
        norm = nn.BatchNorm3d(
            layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats
        )
        norm.load_state_dict(layer.state_dict())
        return norm
    if isinstance(layer, nn.MaxPool2d):
        return nn.MaxPool3d(
            _time_first(layer.kernel_size, 1),
            _time_first(layer.stride, 1),
            _time_first(layer.padding, 0),
            ceil_mode=layer.ceil_mode,
        )
    if isinstance(layer, nn.AdaptiveAvgPool2d):
        return nn.AdaptiveAvgPool3d(1)
    return None


def _time_first(value: int | tuple[int, int], time: int) -> tuple[int, int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    return (time, *pair)
