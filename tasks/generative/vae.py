"""Variational autoencoder: ELBO with the analytic Gaussian KL, a beta weight, and a Bernoulli or
discretized logistic / Gaussian likelihood of the 256 pixel levels.

    task = VAETask(num_classes=10, in_channels=1, image_size=[32, 32], pixel_mean=[0.31],
                   pixel_std=[0.38], likelihood="logistic")

Logged per epoch: ``train/loss`` (the beta-weighted negative ELBO per dimension), ``val/loss``,
``val/recon`` and ``val/kl`` (nats per image) and ``val/bpd`` (the negative ELBO, beta = 1, in
bits per dimension: an upper bound on the model's bits/dim). The ``bernoulli`` likelihood models
binarized images (pixel > 0.5), so its bits/dim are not comparable with the 256-level baseline.
After the fit: ``samples.png``, ``reconstructions.png`` (rows: images, reconstructions) and
``interpolations.png`` (decoded points on the line between two images' latent means).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
from torch.nn import functional as F

from visionflow.batches import ImageClassificationBatch
from visionflow.errors import SpecError
from visionflow.plots import save_figure
from visionflow.registry import TASKS
from visionflow.tasks.generative.base import (
    GRID_COLUMNS,
    GenerativeTask,
    image_grid,
)
from visionflow.tasks.nets.families import VAE_NETS
from visionflow.tasks.nets.generative import LEVELS
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig

Likelihood = Literal["bernoulli", "logistic", "gaussian"]
MIN_LOG_SCALE = -7.0


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, exp(log_var)) || N(0, I))`` in nats, ``[B, Z] -> [B]``."""
    return 0.5 * (mean.square() + log_var.exp() - 1 - log_var).sum(1)


def discretized_log_likelihood(
    pixels: torch.Tensor,
    mean: torch.Tensor,
    log_scale: torch.Tensor,
    kind: Literal["logistic", "gaussian"],
) -> torch.Tensor:
    """``log P(pixels)`` in nats ``[B]`` of pixels ``[B, C, H, W]`` on the 256 levels of [0, 1]:
    the mass of a logistic / Gaussian (``mean``, ``exp(log_scale)``) in each level's bin
    ``pixel +- 1/510``, the end bins reaching to -inf and +inf (PixelCNN++, Salimans et al. 2017)."""
    half_bin = 0.5 / (LEVELS - 1)
    inverse_scale = torch.exp(-log_scale)
    upper = (pixels + half_bin - mean) * inverse_scale
    lower = (pixels - half_bin - mean) * inverse_scale
    cdf = (
        torch.sigmoid if kind == "logistic" else (lambda x: 0.5 * (1 + torch.erf(x / math.sqrt(2))))
    )
    cdf_upper = torch.where(pixels >= 1 - half_bin, torch.ones_like(upper), cdf(upper))
    cdf_lower = torch.where(pixels <= half_bin, torch.zeros_like(lower), cdf(lower))
    return (cdf_upper - cdf_lower).clamp_min(1e-12).log().flatten(1).sum(1)


def bernoulli_log_likelihood(pixels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``log P`` in nats ``[B]`` of the binarized pixels (> 0.5) under Bernoulli ``logits``."""
    targets = (pixels > 0.5).to(logits.dtype)
    return -F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(1).sum(1)


@TASKS.register("vae", batch=ImageClassificationBatch)
class VAETask(GenerativeTask):
    """A convolutional VAE trained on the ELBO (see the module docstring)."""

    def __init__(
        self,
        net: str = "conv_vae",
        net_args: dict[str, Any] | None = None,
        likelihood: Likelihood = "logistic",
        beta: float = 1.0,
        optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=1e-3),
        scheduler: SchedulerConfig = SchedulerConfig(name="none"),
        **shared: Any,
    ):
        super().__init__(optimizer, scheduler, **shared)
        self.save_hyperparameters()
        if beta <= 0:
            raise SpecError(f"beta: must be > 0, got {beta}")
        self.net = self.build_generative_net(
            VAE_NETS, params_per_channel=1 if likelihood == "bernoulli" else 2
        )

    def elbo_terms(
        self, pixels: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reconstruction nats [B], KL nats [B])`` with one reparameterized latent sample."""
        mean, log_var = self.net.encode(pixels, labels)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
        return -self.log_likelihood(pixels, self.net.decode(z, labels)), gaussian_kl(mean, log_var)

    def log_likelihood(self, pixels: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
        """``log p(pixels | z)`` nats ``[B]`` from the decoder's ``[B, P*C, H, W]``."""
        kind = self.hparams.likelihood
        if kind == "bernoulli":
            return bernoulli_log_likelihood(pixels, parameters)
        mean, log_scale = parameters.chunk(2, dim=1)
        return discretized_log_likelihood(pixels, mean, log_scale.clamp_min(MIN_LOG_SCALE), kind)

    def image_of(self, parameters: torch.Tensor) -> torch.Tensor:
        """The decoded image ``[B, C, H, W]`` in [0, 1]: the likelihood's mean."""
        if self.hparams.likelihood == "bernoulli":
            return torch.sigmoid(parameters)
        return parameters.chunk(2, dim=1)[0].clamp(0, 1)

    def training_step(self, batch: ImageClassificationBatch, batch_idx: int) -> torch.Tensor:
        recon, kl = self.elbo_terms(self.pixels(batch.images), self.labels(batch))
        loss = (recon + self.hparams.beta * kl).mean() / self.dims
        self.track(self.train_metrics, {"loss": loss})
        return loss

    def validation_losses(
        self, pixels: torch.Tensor, labels: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        recon, kl = self.elbo_terms(pixels, labels)
        return {
            "loss": (recon + self.hparams.beta * kl) / self.dims,
            "recon": recon,
            "kl": kl,
            "bpd": self.bits_per_dim(recon + kl),
        }

    def log_likelihood_bound(
        self, pixels: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor:
        """The negative ELBO (beta = 1) in nats ``[B]``: an upper bound on ``-log p(pixels)``."""
        recon, kl = self.elbo_terms(pixels, labels)
        return recon + kl

    def sample(self, count: int, labels: torch.Tensor | None) -> torch.Tensor:
        z = torch.randn(count, self.net.latent_dim, device=self.device)
        return self.image_of(self.net.decode(z, labels))

    # ---------------------------------------------------------------------------- artifacts

    def save_artifacts(self, stage: str, directory: Path) -> list[Path]:
        """After ``fit``: samples, reconstructions and latent interpolations (PNG)."""
        paths = super().save_artifacts(stage, directory)
        if stage != "fit" or self.preview is None:
            return paths
        self.eval()
        with torch.no_grad():
            paths += [
                self._save_reconstructions(Path(directory) / "reconstructions.png"),
                self._save_interpolations(Path(directory) / "interpolations.png"),
            ]
        return paths

    def _save_reconstructions(self, path: Path) -> Path:
        pixels, labels = self.preview
        labels = labels if self.hparams.conditional else None
        mean, _ = self.net.encode(pixels, labels)
        rebuilt = self.image_of(self.net.decode(mean, labels))
        return save_figure(
            image_grid(torch.cat([pixels, rebuilt]), "validation images (top) and reconstructions"),
            path,
        )

    def _save_interpolations(self, path: Path) -> Path:
        pixels, labels = self.preview
        pairs = len(pixels) // 2
        mean, _ = self.net.encode(pixels, labels if self.hparams.conditional else None)
        weights = torch.linspace(0, 1, GRID_COLUMNS, device=self.device)[None, :, None]
        line = torch.lerp(mean[:pairs, None], mean[pairs : 2 * pairs, None], weights)  # [P, 10, Z]
        row_labels = (
            labels[:pairs].repeat_interleave(GRID_COLUMNS) if self.hparams.conditional else None
        )
        images = self.image_of(self.net.decode(line.flatten(0, 1), row_labels))
        return save_figure(image_grid(images, "latent interpolations between two images"), path)
