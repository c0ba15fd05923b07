"""Sample quality and likelihood of generative models: bits/dim, FID, KID, class accuracy of samples.

The task's ``evaluation_step`` gives, per batch of real images, a :class:`GenerativeBatch`: the
negative log-likelihood of each image in nats (where the model has one: exact for PixelCNN, the
negative ELBO, an upper bound, for a VAE) and that of an independent-pixel baseline, the features
of the real images and of as many generated ones under a feature extractor (a classifier's
penultimate layer), and the class that classifier predicts for each real and each generated
image. Targets are the real labels (the classes the samples were conditioned on, for a
class-conditional model).

Metrics:

- ``nll`` (nats per image) and ``bpd`` = nll / (C H W ln 2); ``baseline_bpd`` of the baseline;
- ``fid``: ``|mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2))`` over the features, covariance
  with ``N - 1`` (as torchmetrics' ``FrechetInceptionDistance``, which the tests match to 1e-6);
- ``kid``: the unbiased MMD^2 with the cubic polynomial kernel ``(x.y / D + 1)^3`` over all
  samples (torchmetrics' ``KernelInceptionDistance`` with one subset of every sample);
- ``sample_acc``: how often the classifier predicts the conditioning class (conditional models);
- ``real_acc``: how often it predicts the label of a real image: what ``sample_acc`` can reach.

Everything accumulates per sample and is joined in dataset order, so shards give equal results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from visionflow.evaluation import Evaluation


@dataclass
class GenerativeBatch:
    """One batch of ``B`` real images and ``B`` samples: ``nll`` and ``baseline_nll`` ``[B]``
    nats (None without a likelihood), ``real_features`` and ``sample_features`` ``[B, D]``,
    ``sample_classes`` ``[B]`` predicted classes (None for an unconditional model),
    ``real_classes`` ``[B]`` the classes predicted for the real images (None: not scored)."""

    real_features: torch.Tensor
    sample_features: torch.Tensor
    nll: torch.Tensor | None = None
    baseline_nll: torch.Tensor | None = None
    sample_classes: torch.Tensor | None = None
    real_classes: torch.Tensor | None = None


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between feature sets ``[N, D]`` and ``[M, D]`` (float64; ``N, M >= 2``)."""
    real, fake = real.double(), fake.double()
    mean_real, mean_fake = real.mean(0), fake.mean(0)
    cov_real, cov_fake = real.T.cov(), fake.T.cov()
    roots = torch.linalg.eigvals(cov_real @ cov_fake).sqrt().real.sum()
    distance = (
        (mean_real - mean_fake).square().sum() + cov_real.trace() + cov_fake.trace() - 2 * roots
    )
    return float(distance)


def kernel_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """KID: unbiased MMD^2 between ``[N, D]`` and ``[N, D]`` with ``k(x, y) = (x.y / D + 1)^3``."""
    real, fake = real.double(), fake.double()
    count, dims = real.shape

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a @ b.T / dims + 1) ** 3

    k_rr, k_ff, k_rf = kernel(real, real), kernel(fake, fake), kernel(real, fake)
    within = k_rr.sum() - k_rr.diagonal().sum() + k_ff.sum() - k_ff.diagonal().sum()
    return float(within / (count * (count - 1)) - 2 * k_rf.sum() / count**2)


class GenerativeEvaluator:
    """Accumulates :class:`GenerativeBatch` es and real labels; ``dims`` = ``C * H * W``."""

    def __init__(self, dims: int):
        self.dims = dims
        self.reset()

    def reset(self) -> None:
        self.batches: list[GenerativeBatch] = []
        self.labels: list[torch.Tensor] = []

    def process(self, predictions: GenerativeBatch, targets: torch.Tensor) -> None:
        self.batches.append(predictions)
        self.labels.append(targets)

    def evaluate(self) -> Evaluation:
        """The metrics of the module docstring that the batches allow (none without a batch)."""
        if not self.batches:
            return Evaluation(metrics={}, num_samples=0)
        real = torch.cat([b.real_features for b in self.batches])
        fake = torch.cat([b.sample_features for b in self.batches])
        metrics: dict[str, float] = {}
        if len(real) >= 2:
            metrics["fid"] = frechet_distance(real, fake)
            metrics["kid"] = kernel_distance(real, fake)
        metrics.update(self._likelihoods())
        for name in ("sample", "real"):
            classes = [getattr(b, f"{name}_classes") for b in self.batches]
            if classes and all(c is not None for c in classes):
                correct = torch.cat(classes) == torch.cat(self.labels)
                metrics[f"{name}_acc"] = float(correct.double().mean())
        return Evaluation(metrics=metrics, num_samples=len(real))

    def _likelihoods(self) -> dict[str, float]:
        metrics = {}
        for name, prefix in (("nll", ""), ("baseline_nll", "baseline_")):
            values = [getattr(b, name) for b in self.batches]
            if values and all(v is not None for v in values):
                mean = float(torch.cat(values).double().mean())
                metrics[f"{prefix}nll"] = mean
                metrics[f"{prefix}bpd"] = mean / (self.dims * math.log(2))
        return metrics
