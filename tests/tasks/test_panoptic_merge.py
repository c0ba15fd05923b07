"""The Panoptic FPN merge on fixed 8x8 cases whose answers are worked out by hand."""

from __future__ import annotations

import pytest
import torch

from tasks.panoptic_merge import PanopticSegment, merge_panoptic
from visionflow.errors import VisionFlowError

SIZE = 8


def box_mask(top: int, left: int, bottom: int, right: int) -> torch.Tensor:
    """bool ``[8, 8]``, true on rows ``top:bottom`` and columns ``left:right``."""
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


def merge(masks, scores, labels, semantic, **thresholds):
    return merge_panoptic(
        torch.stack(masks) if masks else torch.zeros(0, SIZE, SIZE, dtype=torch.bool),
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(labels, dtype=torch.int64),
        semantic,
        stuff_labels={1, 2},
        **{"stuff_area": 1, **thresholds},
    )


def test_instances_are_pasted_by_score_and_keep_only_their_free_part():
    low = box_mask(0, 2, 4, 6)  # 16 px, 8 of them under `high`: half visible, kept
    high = box_mask(0, 0, 4, 4)  # 16 px
    panoptic, segments = merge(
        [low, high], [0.6, 0.9], [7, 8], torch.zeros(SIZE, SIZE, dtype=torch.int64)
    )
    assert segments == [
        PanopticSegment(1, 8, True, 16, pytest.approx(0.9)),
        PanopticSegment(2, 7, True, 8, pytest.approx(0.6)),
    ]
    expected = torch.zeros(SIZE, SIZE, dtype=torch.int64)
    expected[0:4, 0:4] = 1
    expected[0:4, 4:6] = 2
    assert torch.equal(panoptic, expected)


def test_an_instance_mostly_hidden_is_dropped():
    high = box_mask(0, 0, 4, 4)
    hidden = box_mask(0, 1, 4, 5)  # 16 px, 12 under `high`: a quarter visible
    _, segments = merge(
        [high, hidden], [0.9, 0.8], [3, 4], torch.zeros(SIZE, SIZE, dtype=torch.int64)
    )
    assert [s.category_id for s in segments] == [3]
    _, segments = merge(
        [high, hidden],
        [0.9, 0.8],
        [3, 4],
        torch.zeros(SIZE, SIZE, dtype=torch.int64),
        overlap_threshold=0.25,
    )
    assert [(s.category_id, s.area) for s in segments] == [(3, 16), (4, 4)]


def test_instances_below_the_score_threshold_are_ignored():
    _, segments = merge(
        [box_mask(0, 0, 2, 2), box_mask(4, 4, 6, 6)],
        [0.49, 0.5],
        [1, 2],
        torch.zeros(SIZE, SIZE, dtype=torch.int64),
    )
    assert [(s.category_id, s.score) for s in segments] == [(2, 0.5)]


def test_stuff_fills_the_free_pixels_and_small_stuff_stays_void():
    semantic = torch.zeros(SIZE, SIZE, dtype=torch.int64)
    semantic[:4] = 1  # 32 px of stuff 1, 16 of them under the thing
    semantic[4:] = 2  # 32 px of stuff 2
    semantic[7, 7] = 5  # not a stuff label: void unless a thing covers it
    thing = box_mask(0, 0, 4, 4)
    panoptic, segments = merge([thing], [0.9], [9], semantic, stuff_area=16)
    assert segments == [
        PanopticSegment(1, 9, True, 16, pytest.approx(0.9)),
        PanopticSegment(2, 1, False, 16),
        PanopticSegment(3, 2, False, 31),
    ]
    assert int(panoptic[7, 7]) == 0 and int(panoptic[0, 7]) == 2 and int(panoptic[5, 0]) == 3
    _, segments = merge([thing], [0.9], [9], semantic, stuff_area=17)
    assert [s.category_id for s in segments] == [9, 2]


def test_empty_inputs():
    panoptic, segments = merge([], [], [], torch.zeros(SIZE, SIZE, dtype=torch.int64))
    assert segments == [] and panoptic.shape == (SIZE, SIZE) and int(panoptic.abs().sum()) == 0
    _, segments = merge([box_mask(0, 0, 0, 0)], [0.9], [1], torch.full((SIZE, SIZE), 2))
    assert segments == [PanopticSegment(1, 2, False, 64)]


def test_mismatched_shapes_name_the_argument():
    with pytest.raises(VisionFlowError, match="instance_masks: expected \\[N, 8, 8\\]"):
        merge_panoptic(
            torch.zeros(1, 4, 4, dtype=torch.bool),
            torch.ones(1),
            torch.ones(1),
            torch.zeros(SIZE, SIZE),
            {1},
        )
    with pytest.raises(VisionFlowError, match="instance_scores / instance_labels"):
        merge_panoptic(
            torch.zeros(2, SIZE, SIZE, dtype=torch.bool),
            torch.ones(1),
            torch.ones(1),
            torch.zeros(SIZE, SIZE),
            {1},
        )
