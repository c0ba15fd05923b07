"""ClassificationEvaluator: bad predictions are one clear error, never a silently wrong count."""

from __future__ import annotations

import pytest
import torch

from visionflow.errors import DataError
from visionflow.evaluation.classification import ClassificationEvaluator


@pytest.mark.parametrize("target", [0, 2])
def test_a_predicted_class_outside_the_classes_is_one_clear_error(target):
    # K = 3, predicted class 3: true 0 was counted as (1, 0) in the confusion matrix, true 2 was
    # torch's "shape '[3, 3]' is invalid for input of size 10"
    evaluator = ClassificationEvaluator(num_classes=3)
    with pytest.raises(DataError, match=r"a predicted class is outside 0\.\.2"):
        evaluator.process({"top_k": torch.tensor([[3, 0, 1]]), "loss": 0.1}, torch.tensor([target]))


def test_fewer_ranked_classes_than_top_k_is_one_clear_error():
    # 3 ranked classes of 10: acc_top5 would be top-3 accuracy under the name of top-5
    evaluator = ClassificationEvaluator(num_classes=10)
    with pytest.raises(DataError, match=r"top_k \(1, 3\).*5"):
        evaluator.process({"top_k": torch.tensor([[3, 0, 1]]), "loss": 0.1}, torch.tensor([1]))
