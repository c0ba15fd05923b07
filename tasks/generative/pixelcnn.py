"""PixelCNN: an autoregressive model of the 256 levels of each subpixel, exact log-likelihood.

    task = PixelCNNTask(num_classes=10, in_channels=1, image_size=[16, 16], pixel_mean=[0.31],
                        pixel_std=[0.38], net_args={"gated": True}, conditional=True)

``log p(x) = sum_i log p(x_i | x_<i)`` over subpixels in raster order (colors in order within a
pixel), each a 256-way softmax of the masked-convolution net. Logged: ``train/loss`` and
``val/loss`` (nats per subpixel) and ``val/bpd`` (bits per subpixel, exact). Sampling draws every
image of a batch at once, one pass per subpixel (``C * H * W`` passes) over only what the row needs
(the net's ``prepare_row``: the Gated PixelCNN runs its vertical stack once a row).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from visionflow.batches import ImageClassificationBatch
from visionflow.registry import TASKS
from visionflow.tasks.generative.base import GenerativeTask
from visionflow.tasks.nets.families import PIXELCNN_NETS
from visionflow.tasks.nets.generative import LEVELS
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig


@TASKS.register("pixelcnn", batch=ImageClassificationBatch)
class PixelCNNTask(GenerativeTask):
    """An autoregressive PixelCNN (see the module docstring)."""

    def __init__(
        self,
        net: str = "pixelcnn",
        net_args: dict[str, Any] | None = None,
        optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=1e-3),
        scheduler: SchedulerConfig = SchedulerConfig(name="none"),
        **shared: Any,
    ):
        super().__init__(optimizer, scheduler, **shared)
        self.save_hyperparameters()
        self.net = self.build_generative_net(PIXELCNN_NETS)

    def log_likelihood_bound(
        self, pixels: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor:
        """The exact ``-log p(pixels)`` in nats ``[B]``."""
        logits = self.net(pixels, labels)  # [B, 256, C, H, W]
        levels = torch.round(pixels * (LEVELS - 1)).long()  # [B, C, H, W]
        return F.cross_entropy(logits, levels, reduction="none").flatten(1).sum(1)

    def training_step(self, batch: ImageClassificationBatch, batch_idx: int) -> torch.Tensor:
        loss = (
            self.log_likelihood_bound(self.pixels(batch.images), self.labels(batch)).mean()
            / self.dims
        )
        self.track(self.train_metrics, {"loss": loss})
        return loss

    def validation_losses(
        self, pixels: torch.Tensor, labels: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        nll = self.log_likelihood_bound(pixels, labels)
        return {"loss": nll / self.dims, "bpd": self.bits_per_dim(nll)}

    @torch.no_grad()
    def sample(self, count: int, labels: torch.Tensor | None) -> torch.Tensor:
        """``[count, C, H, W]`` in [0, 1], drawn subpixel by subpixel for the whole batch."""
        height, width = self.hparams.image_size
        colors = self.hparams.in_channels
        images = torch.zeros(count, colors, height, width, device=self.device)
        for row in range(height):
            row_logits = self.net.prepare_row(images, labels, row)
            for column in range(width):
                for color in range(colors):
                    logits = row_logits()[:, :, color, column]  # [B, 256]
                    levels = torch.multinomial(logits.float().softmax(1), 1).squeeze(1)
                    images[:, color, row, column] = levels / (LEVELS - 1)
        return images
