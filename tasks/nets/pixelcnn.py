"""PixelCNN nets of the generative tasks: masked convolutions (van den Oord et al. 2016) and the
gated variant, on images in ``[0, 1]``, optionally conditioned on a class label."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from visionflow.errors import SpecError
from visionflow.tasks.nets.families import PIXELCNN_NETS
from visionflow.tasks.nets.generative import LEVELS, LabelEmbedding, check_positive


def channel_groups(count: int, colors: int) -> torch.Tensor:
    """The color each of ``count`` feature channels belongs to: contiguous blocks ``[count]``."""
    return torch.arange(count) * colors // count


class MaskedConv2d(nn.Conv2d):
    """A convolution (``kernel``: ``k`` or ``(kh, kw)``, odd) that sees only the pixels before the
    centre in raster order, and at the centre the colors before (type ``A``) or up to (type ``B``)
    the output channel's color (van den Oord et al. 2016)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | tuple[int, int],
        mask_type: str,
        colors: int,
    ):
        rows, columns = (kernel, kernel) if isinstance(kernel, int) else kernel
        super().__init__(
            in_channels, out_channels, (rows, columns), padding=(rows // 2, columns // 2)
        )
        row, column = rows // 2, columns // 2
        mask = torch.zeros(out_channels, in_channels, rows, columns)
        mask[:, :, :row] = 1
        mask[:, :, row, :column] = 1
        out_group = channel_groups(out_channels, colors)[:, None]
        in_group = channel_groups(in_channels, colors)[None, :]
        sees = out_group > in_group if mask_type == "A" else out_group >= in_group
        mask[:, :, row, column] = sees.float()
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(images, self.weight * self.mask, self.bias)


def gated(value: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """PixelCNN's gated unit ``tanh(value) * sigmoid(gate)``."""
    return torch.tanh(value) * torch.sigmoid(gate)


class PixelCNNBlock(nn.Module):
    """A residual type-B 3x3 masked conv with a ReLU (the original PixelCNN's layer)."""

    def __init__(self, width: int, colors: int, label_dim: int):
        super().__init__()
        self.value = MaskedConv2d(width, width, 3, "B", colors)
        self.condition = nn.Linear(label_dim, width) if label_dim else None

    def forward(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        value = self.value(features)
        if self.condition is not None:
            value = value + self.condition(condition)[:, :, None, None]
        return features + torch.relu(value)


class GatedBlock(nn.Module):
    """A layer of the Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation
    with PixelCNN Decoders"): a vertical stack (output row ``r`` sees rows ``<= r``, all columns
    within ``kernel // 2``) and a horizontal stack (row ``r``, the columns before, the centre's
    colors by ``mask_type``) that also reads the vertical stack shifted one row down (the
    ``link``), so no blind spot. Both gated, the class condition added to every value and gate.
    Stacks are ``[B, width, H, W]`` (``[B, C, H, W]`` images in the first layer)."""

    def __init__(
        self, in_width: int, width: int, colors: int, kernel: int, mask_type: str, label_dim: int
    ):
        super().__init__()
        self.pad = (kernel // 2, kernel // 2, kernel // 2, 0)  # left, right, top, bottom
        self.vertical = nn.Conv2d(in_width, 2 * width, (kernel // 2 + 1, kernel))
        self.down = nn.Conv2d(2 * width, 2 * width, 1)
        self.value = MaskedConv2d(in_width, width, (1, kernel), mask_type, colors)
        self.gate = MaskedConv2d(in_width, width, (1, kernel), mask_type, colors)
        self.out = MaskedConv2d(width, width, 1, "B", colors)
        self.residual = in_width == width
        self.condition = nn.Linear(label_dim, 4 * width) if label_dim else None

    def conditioned(self, values_and_gates: torch.Tensor, condition: torch.Tensor, stack: int):
        """``gated(value, gate)`` of ``[B, 2w, H, W]``, the condition's bias for ``stack`` added
        (0: vertical, 1: horizontal)."""
        if self.condition is not None:
            bias = self.condition(condition).chunk(2, dim=1)[stack]  # [B, 2w]
            values_and_gates = values_and_gates + bias[:, :, None, None]
        return gated(*values_and_gates.chunk(2, dim=1))

    def vertical_step(
        self, vertical: torch.Tensor, condition: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(the next vertical stack, the link [B, 2w, H, W])``; the link at row ``r`` comes
        from rows ``< r`` only."""
        stack = self.vertical(F.pad(vertical, self.pad))  # rows <= r
        link = self.down(F.pad(stack, (0, 0, 1, 0))[:, :, :-1])  # shifted down: rows < r
        return self.conditioned(stack, condition, 0), link

    def horizontal_step(
        self, horizontal: torch.Tensor, link: torch.Tensor, condition: torch.Tensor
    ) -> torch.Tensor:
        """The next horizontal stack, from this one and the link of the same rows."""
        values_and_gates = torch.cat([self.value(horizontal), self.gate(horizontal)], 1) + link
        out = self.out(self.conditioned(values_and_gates, condition, 1))
        return horizontal + out if self.residual else out


class PixelCNN(nn.Module):
    """``images [B, C, H, W]`` in [0, 1] -> logits ``[B, 256, C, H, W]`` of each subpixel given
    those before it (raster order, colors in order within a pixel): a 7x7 type-A masked conv,
    ``layers`` residual 3x3 blocks (with the original's blind spot up and to the right), two 1x1
    type-B convs. ``context_rows``: how many rows above a pixel its logits can see."""

    def __init__(self, in_channels: int, num_classes: int, width: int, layers: int):
        super().__init__()
        self.colors = in_channels
        self.label = LabelEmbedding(num_classes, 16)
        self.build_layers(in_channels, width, layers)
        self.head = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(width, width, 1, "B", in_channels),
            nn.ReLU(),
            MaskedConv2d(width, in_channels * LEVELS, 1, "B", in_channels),
        )

    def build_layers(self, colors: int, width: int, layers: int) -> None:
        self.context_rows = 7 // 2 + layers  # 3 of the 7x7 conv, 1 a 3x3 block
        self.first = MaskedConv2d(colors, width, 7, "A", colors)
        self.blocks = nn.ModuleList(
            PixelCNNBlock(width, colors, self.label.dim) for _ in range(layers)
        )

    def features(self, inputs: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """``inputs [B, C, H, W]`` in [-1, 1], ``condition [B, E]`` -> ``[B, width, H, W]``."""
        features = self.first(inputs)
        for block in self.blocks:
            features = block(features, condition)
        return features

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        batch, colors, height, width = images.shape
        condition = self.label(labels, batch, images.device)
        logits = self.head(self.features(images * 2 - 1, condition))  # [B, C*256, H, W]
        return logits.view(batch, colors, LEVELS, height, width).transpose(1, 2)

    def prepare_row(
        self, images: torch.Tensor, labels: torch.Tensor | None, row: int
    ) -> Callable[[], torch.Tensor]:
        """A function giving the logits ``[B, 256, C, W]`` of row ``row`` of ``images`` as they
        are when it is called, equal to ``forward``'s (sampling fills the row in place between
        calls): here from the ``context_rows`` rows above it and the row itself."""
        top = max(0, row - self.context_rows)
        return lambda: self(images[:, :, top : row + 1], labels)[:, :, :, -1]


class GatedPixelCNN(PixelCNN):
    """The Gated PixelCNN: a 7x7 :class:`GatedBlock` (type A), ``layers`` 3x3 ones (type B),
    the same head; no blind spot: a pixel sees the whole cone above it."""

    def build_layers(self, colors: int, width: int, layers: int) -> None:
        self.context_rows = 7 // 2 + layers + 1  # and 1 of the shift down
        self.first = GatedBlock(colors, width, colors, 7, "A", self.label.dim)
        self.blocks = nn.ModuleList(
            GatedBlock(width, width, colors, 3, "B", self.label.dim) for _ in range(layers)
        )

    def features(self, inputs: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        vertical, horizontal = inputs, inputs
        for block in (self.first, *self.blocks):
            vertical, link = block.vertical_step(vertical, condition)
            horizontal = block.horizontal_step(horizontal, link, condition)
        return horizontal

    def prepare_row(
        self, images: torch.Tensor, labels: torch.Tensor | None, row: int
    ) -> Callable[[], torch.Tensor]:
        """As :meth:`PixelCNN.prepare_row`, with the vertical stack run once: its links into row
        ``row`` come from the rows above, so each call runs only the horizontal stack on the row."""
        top = max(0, row - self.context_rows)
        condition = self.label(labels, len(images), images.device)
        vertical, links = images[:, :, top : row + 1] * 2 - 1, []
        for block in (self.first, *self.blocks):
            vertical, link = block.vertical_step(vertical, condition)
            links.append(link[:, :, -1:])

        def logits() -> torch.Tensor:
            horizontal = images[:, :, row : row + 1] * 2 - 1  # [B, C, 1, W]
            for block, link in zip((self.first, *self.blocks), links):
                horizontal = block.horizontal_step(horizontal, link, condition)
            batch, colors, _, width = images.shape
            return self.head(horizontal).view(batch, colors, LEVELS, width).transpose(1, 2)

        return logits


@PIXELCNN_NETS.register("pixelcnn")
def pixelcnn(
    *,
    in_channels: int,
    image_size: list[int] | tuple[int, int] | None,
    num_classes: int,
    width: int = 64,
    layers: int = 5,
    gated: bool = False,
) -> nn.Module:
    """PixelCNN (van den Oord et al. 2016): masked convolutions to a 256-way softmax per
    subpixel; ``gated``: the Gated PixelCNN's ``tanh * sigmoid`` units on vertical and
    horizontal stacks."""
    check_positive(width=width, layers=layers)
    if width < in_channels:
        raise SpecError(f"net_args.width: must be >= the {in_channels} color channels, got {width}")
    return (GatedPixelCNN if gated else PixelCNN)(in_channels, num_classes, width, layers)
