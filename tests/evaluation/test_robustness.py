"""RobustnessEvaluator: rates over no image are undefined (NaN), not 0."""

from __future__ import annotations

import math

import torch

from visionflow.evaluation.robustness import RobustnessEvaluator


def test_nothing_processed_has_no_accuracy():
    metrics = RobustnessEvaluator([0.0, 0.1]).evaluate().metrics
    assert math.isnan(metrics["clean_acc"]) and math.isnan(metrics["acc@eps=0.1"])


def test_no_image_right_when_clean_leaves_the_success_rate_undefined():
    # success counts among the images classified right when clean; with none, 0.0 would read
    # "the attack never succeeds" on a model that gets everything wrong
    evaluator = RobustnessEvaluator([0.0, 0.1])
    evaluator.process(torch.tensor([[1, 1], [0, 1]]), torch.tensor([0, 0]))
    metrics = evaluator.evaluate().metrics
    assert metrics["clean_acc"] == 0.0 and metrics["acc@eps=0.1"] == 0.5
    assert math.isnan(metrics["success@eps=0.1"])
