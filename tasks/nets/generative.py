"""Networks of the generative tasks: a convolutional VAE, DCGAN, and PixelCNN (masked convolutions).

Every net works on images in ``[0, 1]`` (the task undoes the datamodule's normalization) and takes
``num_classes`` (0: unconditional; K: conditioned on a class label through an embedding). The two
stride-2 stages of the VAE and DCGAN nets need ``H`` and ``W`` divisible by 4 (8, 16, 28, 32, ...).
"""

from __future__ import annotations

import torch
from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.nets.classic import image_hw
from visionflow.tasks.nets.families import GAN_NETS, PIXELCNN_NETS, VAE_NETS

LEVELS = 256


def quarter_size(image_size: list[int] | tuple[int, int] | None, net: str) -> tuple[int, int]:
    """``(H / 4, W / 4)``: the feature size after two stride-2 stages; SpecError otherwise."""
    height, width = image_hw(image_size, net)
    if height % 4 or width % 4:
        raise SpecError(
            f"image_size: net {net!r} needs sizes divisible by 4, got {height}x{width}",
            hint="give the datamodule an image_size such as 16, 28 or 32",
        )
    return height // 4, width // 4


def check_positive(**values: int) -> None:
    for key, value in values.items():
        if value < 1:
            raise SpecError(f"net_args.{key}: must be >= 1, got {value}")


class LabelEmbedding(nn.Module):
    """``labels [B] -> [B, dim]``; with ``num_classes == 0`` it is unconditional and gives ``[B, 0]``."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.dim = dim if num_classes else 0
        self.table = nn.Embedding(num_classes, dim) if num_classes else None

    def forward(
        self, labels: torch.Tensor | None, batch: int, device: torch.device
    ) -> torch.Tensor:
        if self.table is None:
            return torch.zeros(batch, 0, device=device)
        if labels is None:
            raise ValueError("a class-conditional net needs labels")
        return self.table(labels)


# ------------------------------------------------------------------------------------------ VAE


class ConvVAE(nn.Module):
    """Encoder ``[B, C, H, W] -> (mean, log_var) [B, Z]``; decoder ``z -> [B, P*C, H, W]``: ``P``
    likelihood parameters per channel, channel-major (``[:, :C]`` first parameter, ...)."""

    def __init__(
        self,
        in_channels: int,
        size: tuple[int, int],
        latent_dim: int,
        width: int,
        num_classes: int,
        params_per_channel: int,
    ):
        super().__init__()
        self.latent_dim, self.size = latent_dim, size
        flat = 2 * width * size[0] * size[1]
        self.label = LabelEmbedding(num_classes, 16)
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.posterior = nn.Linear(flat + self.label.dim, 2 * latent_dim)
        self.project = nn.Sequential(
            nn.Linear(latent_dim + self.label.dim, flat),
            nn.ReLU(),
            nn.Unflatten(1, (2 * width, *size)),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, params_per_channel * in_channels, 4, 2, 1),
        )

    def encode(
        self, images: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``images [B, C, H, W]`` in [0, 1] -> ``(mean, log_var)``, each ``[B, Z]``."""
        features = self.encoder(images * 2 - 1)
        condition = self.label(labels, len(images), images.device)
        return self.posterior(torch.cat([features, condition], 1)).chunk(2, dim=1)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """``z [B, Z]`` -> likelihood parameters ``[B, P*C, H, W]``."""
        condition = self.label(labels, len(z), z.device)
        return self.decoder(self.project(torch.cat([z, condition], 1)))


@VAE_NETS.register("conv_vae")
def conv_vae(
    *,
    in_channels: int,
    image_size: list[int] | tuple[int, int] | None,
    num_classes: int,
    params_per_channel: int,
    latent_dim: int = 16,
    width: int = 32,
) -> nn.Module:
    """Two stride-2 conv layers down to a ``latent_dim`` Gaussian, two transposed convs back up."""
    check_positive(latent_dim=latent_dim, width=width)
    return ConvVAE(
        in_channels,
        quarter_size(image_size, "conv_vae"),
        latent_dim,
        width,
        num_classes,
        params_per_channel,
    )


# ---------------------------------------------------------------------------------------- DCGAN


class Generator(nn.Module):
    """``z [B, Z]`` (and labels) -> images ``[B, C, H, W]`` in [0, 1] (DCGAN: transposed convs,
    batch norm, ReLU, a sigmoid output)."""

    def __init__(
        self, in_channels: int, size: tuple[int, int], latent_dim: int, width: int, num_classes: int
    ):
        super().__init__()
        self.label = LabelEmbedding(num_classes, latent_dim)
        self.project = nn.Sequential(
            nn.Linear(latent_dim + self.label.dim, 2 * width * size[0] * size[1]),
            nn.Unflatten(1, (2 * width, *size)),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, in_channels, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        condition = self.label(labels, len(z), z.device)
        return self.layers(self.project(torch.cat([z, condition], 1)))


class Discriminator(nn.Module):
    """images ``[B, C, H, W]`` in [0, 1] (and labels) -> scores ``[B]`` (DCGAN convs with leaky
    ReLU and no batch norm, so the WGAN-GP penalty is per sample; class-conditional by
    projection, Miyato & Koyama 2018)."""

    def __init__(self, in_channels: int, size: tuple[int, int], width: int, num_classes: int):
        super().__init__()
        flat = 2 * width * size[0] * size[1]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.score = nn.Linear(flat, 1)
        self.label = LabelEmbedding(num_classes, flat)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        features = self.features(images * 2 - 1)  # [B, F]
        score = self.score(features).squeeze(1)  # [B]
        if self.label.table is not None:
            score = score + (self.label(labels, len(images), images.device) * features).sum(1)
        return score


class DCGAN(nn.Module):
    """A generator and a discriminator, trained by the GAN task with one optimizer each."""

    def __init__(self, generator: Generator, discriminator: Discriminator, latent_dim: int):
        super().__init__()
        self.generator, self.discriminator, self.latent_dim = generator, discriminator, latent_dim


@GAN_NETS.register("dcgan")
def dcgan(
    *,
    in_channels: int,
    image_size: list[int] | tuple[int, int] | None,
    num_classes: int,
    latent_dim: int = 32,
    width: int = 32,
) -> nn.Module:
    """DCGAN (Radford et al. 2016) at small scale: two up / down stride-2 stages of ``width``."""
    check_positive(latent_dim=latent_dim, width=width)
    size = quarter_size(image_size, "dcgan")
    return DCGAN(
        Generator(in_channels, size, latent_dim, width, num_classes),
        Discriminator(in_channels, size, width, num_classes),
        latent_dim,
    )


# ------------------------------------------------------------------------------------- PixelCNN


def channel_groups(count: int, colors: int) -> torch.Tensor:
    """The color each of ``count`` feature channels belongs to: contiguous blocks ``[count]``."""
    return torch.arange(count) * colors // count


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only the pixels before the centre in raster order, and at the
    centre the colors before (type ``A``) or up to (type ``B``) the output channel's color
    (van den Oord et al. 2016)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str, colors: int
    ):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        centre = kernel_size // 2
        mask = torch.zeros(out_channels, in_channels, kernel_size, kernel_size)
        mask[:, :, :centre] = 1
        mask[:, :, centre, :centre] = 1
        out_group = channel_groups(out_channels, colors)[:, None]
        in_group = channel_groups(in_channels, colors)[None, :]
        sees = out_group > in_group if mask_type == "A" else out_group >= in_group
        mask[:, :, centre, centre] = sees.float()
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(images, self.weight * self.mask, self.bias)


class PixelCNNBlock(nn.Module):
    """A residual type-B 3x3 masked conv; ``gated``: ``tanh(a) * sigmoid(b)`` of two of them."""

    def __init__(self, width: int, colors: int, gated: bool, label_dim: int):
        super().__init__()
        self.value = MaskedConv2d(width, width, 3, "B", colors)
        self.gate = MaskedConv2d(width, width, 3, "B", colors) if gated else None
        self.condition = nn.Linear(label_dim, width) if label_dim else None

    def forward(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        value = self.value(features)
        if self.condition is not None:
            value = value + self.condition(condition)[:, :, None, None]
        if self.gate is None:
            return features + torch.relu(value)
        return features + torch.tanh(value) * torch.sigmoid(self.gate(features))


class PixelCNN(nn.Module):
    """``images [B, C, H, W]`` in [0, 1] -> logits ``[B, 256, C, H, W]`` of each subpixel given
    those before it (raster order, colors in order within a pixel)."""

    def __init__(self, in_channels: int, num_classes: int, width: int, layers: int, gated: bool):
        super().__init__()
        self.colors = in_channels
        #: how many rows above a pixel its logits can see: 3 of the 7x7 conv, 1 a 3x3 block
        self.context_rows = 7 // 2 + layers
        self.label = LabelEmbedding(num_classes, 16)
        self.first = MaskedConv2d(in_channels, width, 7, "A", in_channels)
        self.blocks = nn.ModuleList(
            PixelCNNBlock(width, in_channels, gated, self.label.dim) for _ in range(layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(width, width, 1, "B", in_channels),
            nn.ReLU(),
            MaskedConv2d(width, in_channels * LEVELS, 1, "B", in_channels),
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        batch, colors, height, width = images.shape
        condition = self.label(labels, batch, images.device)
        features = self.first(images * 2 - 1)
        for block in self.blocks:
            features = block(features, condition)
        logits = self.head(features)  # [B, C*256, H, W]
        return logits.view(batch, colors, LEVELS, height, width).transpose(1, 2)

    def row_logits(
        self, images: torch.Tensor, labels: torch.Tensor | None, row: int
    ) -> torch.Tensor:
        """The logits ``[B, 256, C, W]`` of row ``row``, equal to ``forward``'s, from the
        ``context_rows`` rows above it and the row itself: what sampling a row needs."""
        top = max(0, row - self.context_rows)
        return self(images[:, :, top : row + 1], labels)[:, :, :, -1]


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
    """A 7x7 type-A masked conv, ``layers`` residual 3x3 type-B blocks (gated: PixelCNN's
    ``tanh * sigmoid`` units), two 1x1 type-B convs to a 256-way softmax per subpixel."""
    check_positive(width=width, layers=layers)
    if width < in_channels:
        raise SpecError(f"net_args.width: must be >= the {in_channels} color channels, got {width}")
    return PixelCNN(in_channels, num_classes, width, layers, gated)
