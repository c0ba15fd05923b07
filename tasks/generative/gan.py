"""GAN: a DCGAN generator and discriminator, trained by manual optimization with two optimizers.

    task = GANTask(num_classes=10, in_channels=1, image_size=[16, 16], pixel_mean=[0.31],
                   pixel_std=[0.38], loss="non_saturating", conditional=True)

Losses (``d_real``, ``d_fake``: discriminator scores of real and generated images):

- ``non_saturating`` (Goodfellow et al. 2014): D minimizes ``softplus(-d_real) + softplus(d_fake)``
  (the minimax cross-entropy), G minimizes ``softplus(-d_fake)`` = ``-log D(G(z))``;
- ``hinge``: D ``relu(1 - d_real) + relu(1 + d_fake)``, G ``-d_fake``;
- ``wgan_gp`` (Gulrajani et al. 2017): D ``d_fake - d_real + gp_weight (|grad D(x_hat)| - 1)^2``
  on random interpolates ``x_hat``, G ``-d_fake``.

``optimizer`` and ``scheduler`` configure the generator (the base task's sub-configs);
``discriminator_optimizer`` is the same kind of sub-config for the discriminator (DCGAN's Adam
2e-4, beta1 0.5 by default). ``ema_decay`` > 0 keeps an exponential moving average of the
generator's weights, which draws every sample. A GAN's losses do not measure its samples, so the
fit keeps the last checkpoint; ``test`` reports FID/KID (and ``sample_acc`` when conditional).
Logged per epoch: ``train/d_loss``, ``train/g_loss``, ``val/d_loss``, ``val/g_loss``.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Literal

import torch
from torch.nn import functional as F

from visionflow.batches import ImageClassificationBatch
from visionflow.errors import SpecError
from visionflow.registry import TASKS
from visionflow.tasks.generative.base import GenerativeTask
from visionflow.tasks.nets.families import GAN_NETS
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig, config_from

GanLoss = Literal["non_saturating", "hinge", "wgan_gp"]
DCGAN_ADAM = OptimizerConfig(name="adam", lr=2e-4, momentum=0.5)


def discriminator_loss(
    real_scores: torch.Tensor, fake_scores: torch.Tensor, loss: GanLoss
) -> torch.Tensor:
    """The discriminator's loss (to minimize) from scores ``[B]``, without the gradient penalty."""
    if loss == "non_saturating":
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
    if loss == "hinge":
        return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
    return fake_scores.mean() - real_scores.mean()


def generator_loss(fake_scores: torch.Tensor, loss: GanLoss) -> torch.Tensor:
    """The generator's loss (to minimize) from the discriminator's scores ``[B]`` of its images."""
    if loss == "non_saturating":
        return F.softplus(-fake_scores).mean()
    return -fake_scores.mean()


def gradient_penalty(
    discriminator: Any, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None
) -> torch.Tensor:
    """WGAN-GP: mean ``(|grad_x D(x)| - 1)^2`` at random points between real and fake ``[B, ...]``."""
    weights = torch.rand(len(real), 1, 1, 1, device=real.device)
    points = torch.lerp(real, fake, weights).requires_grad_(True)
    scores = discriminator(points, labels)
    (gradients,) = torch.autograd.grad(scores.sum(), points, create_graph=True)
    return (gradients.flatten(1).norm(dim=1) - 1).square().mean()


@TASKS.register("gan", batch=ImageClassificationBatch)
class GANTask(GenerativeTask):
    """A DCGAN (see the module docstring)."""

    checkpoint_monitor: ClassVar[tuple[str, str] | None] = None

    def __init__(
        self,
        net: str = "dcgan",
        net_args: dict[str, Any] | None = None,
        loss: GanLoss = "non_saturating",
        gp_weight: float = 10.0,
        ema_decay: float = 0.999,
        optimizer: OptimizerConfig = DCGAN_ADAM,
        scheduler: SchedulerConfig = SchedulerConfig(name="none"),
        discriminator_optimizer: OptimizerConfig = DCGAN_ADAM,
        **shared: Any,
    ):
        super().__init__(optimizer, scheduler, **shared)
        self.save_hyperparameters()
        if not 0 <= ema_decay < 1:
            raise SpecError(f"ema_decay: must be in [0, 1) (0: no average), got {ema_decay}")
        if gp_weight < 0:
            raise SpecError(f"gp_weight: must be >= 0, got {gp_weight}")
        self.discriminator_config = config_from(discriminator_optimizer, DCGAN_ADAM)
        self.automatic_optimization = False
        self.net = self.build_generative_net(GAN_NETS)
        self.ema_generator = copy.deepcopy(self.net.generator).requires_grad_(False)
        self.ema_updates = 0

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["ema_updates"] = self.ema_updates

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.ema_updates = checkpoint.get("ema_updates", 0)

    # ------------------------------------------------------------------------ optimization

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The generator's parameters (``optimizer`` trains them)."""
        return [{"params": list(self.net.generator.parameters())}]

    def configure_optimizers(self) -> Any:
        """``[generator optimizer, discriminator optimizer]`` and their schedules, if any."""
        generator = self.optimizer_config.build(self.parameter_groups())
        discriminator = self.discriminator_config.build(self.net.discriminator.parameters())
        schedules = [
            self.scheduler_config.build(o, self.trainer) for o in (generator, discriminator)
        ]
        return [generator, discriminator], [s for s in schedules if s is not None]

    def training_step(self, batch: ImageClassificationBatch, batch_idx: int) -> None:
        generator_optimizer, discriminator_optimizer = self.optimizers()
        real, labels = self.pixels(batch.images), self.labels(batch)
        z = torch.randn(len(real), self.net.latent_dim, device=self.device)
        fake = self.net.generator(z, labels)
        d_loss = self.discriminator_step_loss(real, fake.detach(), labels)
        discriminator_optimizer.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        discriminator_optimizer.step()
        g_loss = generator_loss(self.net.discriminator(fake, labels), self.hparams.loss)
        generator_optimizer.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        generator_optimizer.step()
        self.update_ema()
        self.step_schedules("step")
        self.track(self.train_metrics, {"d_loss": d_loss, "g_loss": g_loss})

    def discriminator_step_loss(
        self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor:
        discriminator = self.net.discriminator
        loss = discriminator_loss(
            discriminator(real, labels), discriminator(fake, labels), self.hparams.loss
        )
        if self.hparams.loss == "wgan_gp" and self.hparams.gp_weight:
            loss = loss + self.hparams.gp_weight * gradient_penalty(
                discriminator, real, fake, labels
            )
        return loss

    @torch.no_grad()
    def update_ema(self) -> None:
        """``ema = d * ema + (1 - d) * generator`` with ``d = min(ema_decay, (1 + n) / (10 + n))``
        at the ``n``-th update: the warm-up keeps the initial weights from lingering in the
        average of a short run (0.999 ** 1000 = 37 % after 1,000 steps without it). Buffers
        (batch-norm statistics) are copied."""
        updates = self.ema_updates
        decay = min(self.hparams.ema_decay, (1 + updates) / (10 + updates))
        self.ema_updates = updates + 1
        average, current = self.ema_generator, self.net.generator
        torch._foreach_lerp_(list(average.parameters()), list(current.parameters()), 1 - decay)
        for kept, new in zip(average.buffers(), current.buffers()):
            kept.copy_(new)

    def step_schedules(self, interval: str) -> None:
        for config in self.trainer.lr_scheduler_configs:
            if config.interval == interval:
                config.scheduler.step()

    def on_train_epoch_end(self) -> None:
        self.step_schedules("epoch")
        super().on_train_epoch_end()

    # ---------------------------------------------------------------------------- sampling

    def validation_losses(
        self, pixels: torch.Tensor, labels: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        fake = self.net.generator(
            torch.randn(len(pixels), self.net.latent_dim, device=self.device), labels
        )
        scores = self.net.discriminator(fake, labels)
        d_loss = discriminator_loss(
            self.net.discriminator(pixels, labels), scores, self.hparams.loss
        )
        return {"d_loss": d_loss, "g_loss": generator_loss(scores, self.hparams.loss)}

    def sample(self, count: int, labels: torch.Tensor | None) -> torch.Tensor:
        generator = self.ema_generator if self.hparams.ema_decay else self.net.generator
        z = torch.randn(count, self.net.latent_dim, device=self.device)
        return generator(z, labels)
