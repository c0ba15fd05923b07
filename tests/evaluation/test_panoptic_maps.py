"""PanopticEvaluator: in-memory id maps scored by panopticapi's rules, on hand-worked 8x8 cases."""

from __future__ import annotations

import numpy as np
import pytest

from visionflow.errors import DataError
from visionflow.evaluation.panoptic_maps import PanopticEvaluator

THING, STUFF = 1, 4  # category ids


def scene(thing_rows: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """8x8: segment 7 (thing) on rows ``0:thing_rows`` x columns 0:4, segment 3 (stuff) elsewhere."""
    ids = np.full((8, 8), 3)
    ids[:thing_rows, :4] = 7
    return ids, [(7, THING), (3, STUFF)]


@pytest.fixture
def evaluator():
    return PanopticEvaluator((THING, STUFF), ("box", "sky"), (True, False))


def test_a_perfect_prediction_scores_100(evaluator):
    evaluator.process([scene(4), scene(4)], [scene(4), scene(4)])
    evaluation = evaluator.evaluate()
    assert evaluation.num_samples == 2
    assert evaluation.metrics["PQ"] == pytest.approx(100)
    assert evaluation.metrics["PQ_things"] == evaluation.metrics["PQ_stuff"] == pytest.approx(100)


def test_a_thing_at_iou_one_half_is_unmatched(evaluator):
    # predicted thing: 8 of the true 16 px (IoU 0.5, not above it): one FP and one FN -> PQ 0;
    # predicted stuff: 56 px holding the true 48 -> IoU 48/56, matched, PQ = SQ = 6/7
    evaluator.process([scene(2)], [scene(4)])
    metrics = evaluator.evaluate().metrics
    assert metrics["PQ_things"] == pytest.approx(0)
    assert metrics["PQ_stuff"] == pytest.approx(100 * 6 / 7, abs=1e-3)
    assert metrics["PQ"] == pytest.approx(100 * 3 / 7, abs=1e-3)


def test_reset_forgets_the_images(evaluator):
    evaluator.process([scene(2)], [scene(4)])
    evaluator.reset()
    evaluator.process([scene(4)], [scene(4)])
    assert evaluator.evaluate().metrics["PQ"] == pytest.approx(100)


def test_nothing_processed_is_one_clear_error(evaluator):
    with pytest.raises(DataError, match="no images were processed"):
        evaluator.evaluate()


def test_a_group_without_any_segment_is_left_out_not_minus_100(evaluator):
    # no stuff segment predicted or true: panopticapi's stuff average has n = 0 (undefined), the
    # engine answers -1; logging PQ_stuff = -100 would read as a real, terrible score
    things_only = np.where(scene(4)[0] == 7, 7, 0), [(7, THING)]
    evaluator.process([things_only], [things_only])
    metrics = evaluator.evaluate().metrics
    assert metrics["PQ"] == metrics["PQ_things"] == pytest.approx(100)
    assert not any(name.endswith("_stuff") for name in metrics)
