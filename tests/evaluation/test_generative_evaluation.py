"""The generative evaluator: FID and KID equal torchmetrics' on the same features; bits/dim."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from visionflow.evaluation.generative import (
    GenerativeBatch,
    GenerativeEvaluator,
    frechet_distance,
    kernel_distance,
)


class GivenFeatures(nn.Module):
    """A torchmetrics feature extractor that passes its input through: features ``[N, D]``."""

    def __init__(self, dims: int):
        super().__init__()
        self.num_features = dims

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def feature_sets(count: int = 64, dims: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(count, dims, generator=generator, dtype=torch.float64)
    fake = 0.7 * torch.randn(count, dims, generator=generator, dtype=torch.float64) + 0.3
    return real, fake


def test_fid_of_a_set_with_itself_is_zero():
    real, _ = feature_sets()
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-9)


def test_fid_matches_torchmetrics():
    real, fake = feature_sets()
    reference = FrechetInceptionDistance(feature=GivenFeatures(8)).double()
    reference.update(real, real=True)
    reference.update(fake, real=False)
    assert frechet_distance(real, fake) == pytest.approx(float(reference.compute()), abs=1e-6)


def test_kid_matches_torchmetrics_over_one_subset_of_every_sample():
    real, fake = feature_sets()
    reference = KernelInceptionDistance(
        feature=GivenFeatures(8), subsets=1, subset_size=len(real)
    ).double()
    reference.update(real, real=True)
    reference.update(fake, real=False)
    kid_mean, _ = reference.compute()
    assert kernel_distance(real, fake) == pytest.approx(float(kid_mean), abs=1e-6)


def batches(
    real: torch.Tensor, fake: torch.Tensor, size: int
) -> list[tuple[GenerativeBatch, torch.Tensor]]:
    pairs = []
    for start in range(0, len(real), size):
        part = slice(start, start + size)
        count = len(real[part])
        pairs.append(
            (
                GenerativeBatch(
                    real[part],
                    fake[part],
                    nll=torch.full((count,), 64 * math.log(2)),
                    baseline_nll=torch.full((count,), 128 * math.log(2)),
                    sample_classes=torch.arange(count) % 2,
                    real_classes=(torch.arange(start, start + count) % 4).clamp(max=1),
                ),
                torch.zeros(count, dtype=torch.long),
            )
        )
    return pairs


def evaluate(pairs) -> dict[str, float]:
    evaluator = GenerativeEvaluator(dims=64)
    for predictions, targets in pairs:
        evaluator.process(predictions, targets)
    return evaluator.evaluate().metrics


def test_evaluator_metrics_and_shards_give_equal_results():
    real, fake = feature_sets()
    whole = evaluate(batches(real, fake, 64))
    assert whole["bpd"] == pytest.approx(1.0) and whole["baseline_bpd"] == pytest.approx(2.0)
    assert whole["sample_acc"] == pytest.approx(0.5)
    assert whole["real_acc"] == pytest.approx(0.25)
    assert whole["fid"] == frechet_distance(real, fake)
    assert evaluate(batches(real, fake, 10)) == whole


def test_nothing_processed_scores_no_sample():
    # was torch.cat's "expected a non-empty list of Tensors"
    evaluation = GenerativeEvaluator(dims=64).evaluate()
    assert evaluation.num_samples == 0 and evaluation.metrics == {}
