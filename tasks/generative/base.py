"""What the generative tasks share: pixels, the baseline, sample grids and the evaluation contract.

The tasks train on the classification datamodules. A batch's normalized images become pixels in
``[0, 1]`` on the 256 levels the data was stored with (``pixel_mean`` / ``pixel_std`` come from the
datamodule's ``DatasetInfo``); every model works on those. A subclass gives:

- ``sample(count, labels) -> [count, C, H, W]`` in [0, 1] (labels ``[count]`` or None);
- ``log_likelihood_bound(pixels, labels) -> [B]`` nats (None without a likelihood);
- ``validation_losses(pixels, labels) -> {name: [B] or scalar}``, logged as ``val/<name>``
  (``bpd`` among them where the model has a likelihood).

Shared here: the independent-pixel baseline (a 256-level histogram per subpixel, counted over the
train split when a fit starts and kept in the checkpoint), sample grids every
``sample_every_n_epochs`` (``plots/samples_epochNNN.png``) and after the fit (``samples.png``;
``sample_grid_rows`` rows of ten; 0: none),
and the evaluation contract (:mod:`visionflow.evaluation.generative`), used by the ``test`` stage
(``test/fid``, ``test/kid``, ``test/bpd``, ...) and the ``evaluate`` stage alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torchmetrics import MeanMetric

from visionflow.batches import ImageClassificationBatch
from visionflow.errors import RunError, SpecError
from visionflow.evaluation.generative import GenerativeBatch, GenerativeEvaluator
from visionflow.plots import save_figure
from visionflow.tasks.base import LabelledDataTask
from visionflow.tasks.generative.features import (
    FeatureClassifier,
    load_classifier,
    train_classifier,
)
from visionflow.tasks.nets.families import checked_builder
from visionflow.tasks.nets.generative import LEVELS
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig

GRID_COLUMNS = 10


class GenerativeTask(LabelledDataTask):
    """Base of the VAE, GAN and PixelCNN tasks (see the module docstring): declares the arguments
    they share, checks them and builds the state they need; a subclass forwards them as
    ``**shared``: ``super().__init__(optimizer, scheduler, **shared)``, then
    ``self.save_hyperparameters()`` and :meth:`build_generative_net`.

    ``pixel_mean`` / ``pixel_std``: the datamodule's normalization per channel (None: none);
    ``conditional``: condition on the label; ``sample_every_n_epochs`` / ``sample_grid_rows``: the
    sample grids; ``classifier_checkpoint`` / ``classifier_epochs``: the evaluation's feature
    classifier (trained for ``classifier_epochs`` when no checkpoint is given).
    """

    def __init__(
        self,
        optimizer: OptimizerConfig | Mapping[str, Any] | None,
        scheduler: SchedulerConfig | Mapping[str, Any] | None,
        /,
        *,
        in_channels: int = 1,
        image_size: list[int] | tuple[int, int] | None = None,
        pixel_mean: list[float] | None = None,
        pixel_std: list[float] | None = None,
        conditional: bool = False,
        sample_every_n_epochs: int = 5,
        sample_grid_rows: int = 10,
        classifier_checkpoint: str | None = None,
        classifier_epochs: int = 20,
        **data: Any,
    ):
        super().__init__(
            optimizer, scheduler, in_channels=in_channels, image_size=image_size, **data
        )
        _check_shared_arguments(
            image_size=image_size,
            in_channels=in_channels,
            pixel_mean=pixel_mean,
            sample_every_n_epochs=sample_every_n_epochs,
            sample_grid_rows=sample_grid_rows,
            classifier_epochs=classifier_epochs,
        )
        shape = (in_channels, *image_size)
        mean = pixel_mean if pixel_mean is not None else [0.0] * in_channels  # None: not normalized
        std = pixel_std if pixel_std is not None else [1.0] * in_channels
        self.register_buffer("pixel_mean", torch.tensor(mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(-1, 1, 1), persistent=False)
        self.register_buffer("baseline_counts", torch.zeros(*shape, LEVELS))
        self.dims = math.prod(shape)
        self.val_metrics = nn.ModuleDict()
        self.train_metrics = nn.ModuleDict()
        self.test_evaluator: GenerativeEvaluator | None = None
        self.preview: tuple[torch.Tensor, torch.Tensor] | None = None
        self.feature_classifier: FeatureClassifier | None = None

    def build_generative_net(self, family: Any, **extra: Any) -> nn.Module:
        """The net ``hparams.net`` of ``family`` (a ``NETS`` family) with ``net_args``, the data's
        arguments (the class count only when conditional) and the task's ``extra`` ones; errors
        name ``net`` or ``net_args.<key>``."""
        h = self.hparams
        provided = {
            "in_channels": h.in_channels,
            "image_size": h.image_size,
            "num_classes": h.num_classes if h.conditional else 0,
            **extra,
        }
        net_args = dict(h.net_args or {})
        builder = checked_builder(family, h.net, net_args, common_args=len(provided))
        return builder(**provided, **net_args)

    # ------------------------------------------------------------------------------- pixels

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized ``[B, C, H, W]`` -> pixels in [0, 1] on the 256 levels."""
        unit = (images * self.pixel_std + self.pixel_mean).clamp(0, 1)
        return torch.round(unit * (LEVELS - 1)) / (LEVELS - 1)

    def normalized(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] -> the datamodule's normalization (what the classifier reads)."""
        return (pixels - self.pixel_mean) / self.pixel_std

    def labels(self, batch: ImageClassificationBatch) -> torch.Tensor | None:
        """The batch's labels for a class-conditional model, else None."""
        return batch.targets if self.hparams.conditional else None

    # ----------------------------------------------------------------- independent-pixel baseline

    def on_fit_start(self) -> None:
        if not bool(self.baseline_counts.any()):
            self.count_baseline(self.trainer.datamodule.train_dataloader())

    @torch.no_grad()
    def count_baseline(self, loader: Any) -> None:
        """Histogram of the 256 levels of every subpixel over ``loader``'s images."""
        for images, _ in loader:
            levels = torch.round(self.pixels(images.to(self.device)) * (LEVELS - 1)).long()
            positions = torch.arange(self.dims, device=self.device) * LEVELS  # [C*H*W]
            index = (levels.flatten(1) + positions).flatten()  # [B*C*H*W]
            self.baseline_counts.view(-1).scatter_add_(
                0, index, torch.ones_like(index, dtype=self.baseline_counts.dtype)
            )

    def baseline_nll(self, pixels: torch.Tensor) -> torch.Tensor:
        """Nats ``[B]`` of each image under independent per-subpixel histograms (add-one smoothed)."""
        probabilities = (self.baseline_counts + 1) / (
            self.baseline_counts.sum(-1, keepdim=True) + LEVELS
        )
        levels = torch.round(pixels * (LEVELS - 1)).long()  # [B, C, H, W]
        log_p = probabilities.log().unsqueeze(0).expand(len(pixels), *probabilities.shape)
        return -log_p.gather(-1, levels.unsqueeze(-1)).squeeze(-1).flatten(1).sum(1)

    # ------------------------------------------------------------------- subclass interface

    def sample(self, count: int, labels: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def log_likelihood_bound(
        self, pixels: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor | None:
        return None

    def validation_losses(
        self, pixels: torch.Tensor, labels: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # ------------------------------------------------------------------ epoch-end logging

    def track(self, metrics: nn.ModuleDict, values: dict[str, torch.Tensor]) -> None:
        """Accumulate ``values`` (per-image ``[B]`` or scalars) on the device."""
        for name, value in values.items():
            if name not in metrics:
                metrics[name] = MeanMetric(nan_strategy="disable").to(self.device)
            metrics[name].update(value.detach())

    def log_tracked(self, metrics: nn.ModuleDict, stage: str) -> None:
        for name, metric in metrics.items():
            if metric.update_called:
                self.log(f"{stage}/{name}", metric.compute(), prog_bar=True, sync_dist=True)
                metric.reset()

    def on_train_epoch_end(self) -> None:
        self.log_tracked(self.train_metrics, "train")

    def validation_step(self, batch: ImageClassificationBatch, batch_idx: int) -> None:
        pixels, labels = self.pixels(batch.images), self.labels(batch)
        if batch_idx == 0:
            self.preview = (pixels[:GRID_COLUMNS], batch.targets[:GRID_COLUMNS])
        self.track(self.val_metrics, self.validation_losses(pixels, labels))

    def bits_per_dim(self, nll: torch.Tensor) -> torch.Tensor:
        """Nats per image ``[B]`` -> bits per subpixel ``[B]``."""
        return nll / (self.dims * math.log(2))

    def on_validation_epoch_end(self) -> None:
        self.log_tracked(self.val_metrics, "val")
        every = self.hparams.sample_every_n_epochs
        epoch = self.current_epoch + 1
        if (
            every
            and epoch % every == 0
            and self.hparams.sample_grid_rows
            and not self.trainer.sanity_checking
            and self.trainer.is_global_zero
        ):
            directory = Path(self.trainer.default_root_dir) / "plots"
            self.save_samples(directory / f"samples_epoch{epoch:03d}.png", f"epoch {epoch}")

    # ------------------------------------------------------------------- evaluation contract

    def classifier(self) -> FeatureClassifier:
        """The feature classifier: from ``classifier_checkpoint``, else trained on the train split."""
        if self.feature_classifier is None:
            h = self.hparams
            size = tuple(h.image_size)
            if h.classifier_checkpoint:
                self.feature_classifier = load_classifier(
                    h.classifier_checkpoint,
                    num_classes=h.num_classes,
                    in_channels=h.in_channels,
                    image_size=size,
                )
            else:
                self.feature_classifier = train_classifier(
                    self._train_loader(),
                    num_classes=h.num_classes,
                    in_channels=h.in_channels,
                    image_size=size,
                    epochs=h.classifier_epochs,
                    device=self.device,
                )
        return self.feature_classifier

    def _train_loader(self) -> Any:
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        if datamodule is None:
            raise RunError(
                "no classifier for FID/KID: this task has no datamodule to train one on",
                hint="set task.args.classifier_checkpoint to an "
                "image_classification checkpoint on the same data",
            )
        datamodule.setup("fit")
        rank_zero_info(f"training the FID/KID classifier ({self.hparams.classifier_epochs} epochs)")
        return datamodule.train_dataloader()

    def make_evaluator(self) -> GenerativeEvaluator:
        """bits/dim, baseline bits/dim, FID, KID and sample accuracy (see the evaluator)."""
        return GenerativeEvaluator(self.dims)

    @torch.no_grad()
    def evaluation_step(
        self, batch: ImageClassificationBatch
    ) -> tuple[GenerativeBatch, torch.Tensor]:
        """One sample per real image (conditioned on its label), scored against the real batch."""
        pixels, labels = self.pixels(batch.images), self.labels(batch)
        samples = self.sample(len(pixels), labels)
        classifier = self.classifier()
        real_features, real_logits = classifier(self.normalized(pixels))
        sample_features, sample_logits = classifier(self.normalized(samples))
        nll = self.log_likelihood_bound(pixels, labels)
        result = GenerativeBatch(
            real_features=real_features.cpu(),
            sample_features=sample_features.cpu(),
            nll=None if nll is None else nll.cpu(),
            baseline_nll=self.baseline_nll(pixels).cpu(),
            sample_classes=sample_logits.argmax(1).cpu() if labels is not None else None,
            real_classes=real_logits.argmax(1).cpu(),
        )
        return result, batch.targets.cpu()

    def on_test_epoch_start(self) -> None:
        self.test_evaluator = self.make_evaluator()

    def test_step(self, batch: ImageClassificationBatch, batch_idx: int) -> None:
        self.test_evaluator.process(*self.evaluation_step(batch))

    def on_test_epoch_end(self) -> None:
        evaluation = self.test_evaluator.evaluate()
        for name, value in evaluation.metrics.items():
            self.log(f"test/{name}", value, sync_dist=True)

    # ---------------------------------------------------------------------------- artifacts

    def save_artifacts(self, stage: str, directory: Path) -> list[Path]:
        """After ``fit``: ``samples.png`` (when class-conditional, one class a column, headed by
        its name: classes 0-9, or all of them repeated when there are fewer)."""
        if stage != "fit" or not self.hparams.sample_grid_rows:
            return []
        return [self.save_samples(Path(directory) / "samples.png", "samples after training")]

    @torch.no_grad()
    def save_samples(self, path: Path, title: str) -> Path:
        labels, column_labels = None, None
        count = GRID_COLUMNS * self.hparams.sample_grid_rows
        if self.hparams.conditional:
            classes = [column % self.hparams.num_classes for column in range(GRID_COLUMNS)]
            labels = torch.tensor(classes, device=self.device).repeat(count // GRID_COLUMNS)
            column_labels = [self.class_names[c] for c in classes]
            title = f"{title} (one class a column)"
        was_training = self.training
        self.eval()
        samples = self.sample(count, labels)
        self.train(was_training)
        return save_figure(image_grid(samples, title, column_labels=column_labels), path, dpi=100)


def image_grid(
    rows_of_images: torch.Tensor,
    title: str,
    columns: int = GRID_COLUMNS,
    column_labels: list[str] | None = None,
):
    """A matplotlib Figure of images ``[N, C, H, W]`` in [0, 1], ``columns`` to a row, each
    column headed by its ``column_labels`` entry where given (the class of conditional samples)."""
    from matplotlib.figure import Figure

    images = rows_of_images.detach().float().cpu()
    count, channels, height, width = images.shape
    rows = math.ceil(count / columns)
    grid = torch.ones(channels, rows * (height + 1) + 1, columns * (width + 1) + 1)
    for index, image in enumerate(images):
        top, left = 1 + (index // columns) * (height + 1), 1 + (index % columns) * (width + 1)
        grid[:, top : top + height, left : left + width] = image
    figure = Figure(figsize=(columns * 0.6 + 0.4, rows * 0.6 + 0.6), layout="constrained")
    axes = figure.subplots()
    axes.imshow(
        grid.permute(1, 2, 0).squeeze(-1).numpy(),
        cmap="gray",
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    axes.set_axis_off()
    if column_labels:
        for column, label in enumerate(column_labels[:columns]):
            axes.text(1 + column * (width + 1) + width / 2, -0.5, label, ha="center", va="bottom")
    axes.set_title(title, pad=18 if column_labels else 6)
    return figure


def _check_shared_arguments(
    *,
    image_size: Sequence[int] | None,
    in_channels: int,
    pixel_mean: Sequence[float] | None,
    sample_every_n_epochs: int,
    sample_grid_rows: int,
    classifier_epochs: int,
) -> None:
    """SpecError naming the first of :class:`GenerativeTask`'s arguments that is out of range."""
    checks = [
        (
            image_size is not None and len(image_size) == 2,
            "image_size",
            f"a generative model needs a fixed [H, W], got {image_size}",
        ),
        (
            pixel_mean is None or len(pixel_mean) == in_channels,
            "pixel_mean",
            f"{len(pixel_mean or [])} values for {in_channels} channels",
        ),
        (
            sample_every_n_epochs >= 0,
            "sample_every_n_epochs",
            f"must be >= 0 (0: only after the fit), got {sample_every_n_epochs}",
        ),
        (
            sample_grid_rows >= 0,
            "sample_grid_rows",
            f"must be >= 0 (0: no sample grids), got {sample_grid_rows}",
        ),
        (classifier_epochs >= 1, "classifier_epochs", f"must be >= 1, got {classifier_epochs}"),
    ]
    for ok, key, message in checks:
        if not ok:
            raise SpecError(f"{key}: {message}")
