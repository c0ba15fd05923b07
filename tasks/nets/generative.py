"""Networks of the generative tasks: a convolutional VAE and DCGAN (PixelCNN: tasks/nets/pixelcnn.py).

Every net works on images in ``[0, 1]`` (the task undoes the datamodule's normalization) and takes
``num_classes`` (0: unconditional; K: conditioned on a class label through an embedding). The two
stride-2 stages of the VAE and DCGAN nets need ``H`` and ``W`` divisible by 4 (8, 16, 28, 32, ...).
"""

from __future__ import annotations

import torch
from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.nets.classic import image_hw
from visionflow.tasks.nets.families import GAN_NETS, VAE_NETS

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


def downsampling_features(
    in_channels: int, size: tuple[int, int], width: int
) -> tuple[nn.Sequential, int]:
    """(images ``[B, C, 4h, 4w]`` -> flat features ``[B, F]``: two stride-2 convs with leaky
    ReLUs, the VAE's encoder and the DCGAN critic's features; F = 2 * width * h * w for ``size``
    = (h, w))."""
    layers = nn.Sequential(
        nn.Conv2d(in_channels, width, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
    )
    return layers, 2 * width * size[0] * size[1]


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
        self.label = LabelEmbedding(num_classes, 16)
        self.encoder, flat = downsampling_features(in_channels, size, width)
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
        self.features, flat = downsampling_features(in_channels, size, width)
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
