"""The Panoptic FPN merge: things from an instance head, stuff from a semantic head.

    panoptic, segments = merge_panoptic(
        instance_masks, instance_scores, instance_labels, semantic, stuff_labels={0, 1}
    )

As detectron2's ``combine_semantic_and_instance_outputs``: instances are pasted from the highest
score down; one below ``score_threshold`` ends the pass; one whose still-free part is less than
``overlap_threshold`` of its own mask is dropped, otherwise only its free part is kept. Then each
stuff label of the semantic map fills the pixels the things left free, if that is at least
``stuff_area`` pixels. Segment ids count from 1; 0 is void.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import torch

from visionflow.errors import VisionFlowError


@dataclass(frozen=True)
class PanopticSegment:
    """One segment of a panoptic id map: ``id`` >= 1, its category, area in pixels, and the
    instance's score (``None`` for stuff)."""

    id: int
    category_id: int
    isthing: bool
    area: int
    score: float | None = None


def merge_panoptic(
    instance_masks: torch.Tensor,
    instance_scores: torch.Tensor,
    instance_labels: torch.Tensor,
    semantic: torch.Tensor,
    stuff_labels: Collection[int],
    *,
    score_threshold: float = 0.5,
    overlap_threshold: float = 0.5,
    stuff_area: int = 64,
) -> tuple[torch.Tensor, list[PanopticSegment]]:
    """Merge ``N`` instances and a semantic map into one panoptic id map.

    ``instance_masks`` bool ``[N, H, W]`` (binarized); ``instance_scores`` float ``[N]``;
    ``instance_labels`` int ``[N]`` (thing category ids); ``semantic`` int ``[H, W]`` labels, of
    which ``stuff_labels`` become stuff segments (any other label stays void where no thing
    covers it). Returns the id map int64 ``[H, W]`` and its segments in id order.
    """
    _check_inputs(instance_masks, instance_scores, instance_labels, semantic)
    panoptic = torch.zeros(semantic.shape, dtype=torch.int64, device=semantic.device)
    segments: list[PanopticSegment] = []
    for index in torch.argsort(instance_scores, descending=True, stable=True).tolist():
        score = float(instance_scores[index])
        if score < score_threshold:
            break
        mask = instance_masks[index].bool()
        visible = mask & (panoptic == 0)
        mask_area, visible_area = int(mask.sum()), int(visible.sum())
        if mask_area == 0 or visible_area < overlap_threshold * mask_area:
            continue
        segments.append(
            PanopticSegment(
                len(segments) + 1, int(instance_labels[index]), True, visible_area, score
            )
        )
        panoptic[visible] = len(segments)
    for label in sorted(set(torch.unique(semantic).tolist()) & set(stuff_labels)):
        region = (semantic == label) & (panoptic == 0)
        area = int(region.sum())
        if area < stuff_area or area == 0:
            continue
        segments.append(PanopticSegment(len(segments) + 1, int(label), False, area))
        panoptic[region] = len(segments)
    return panoptic, segments


def _check_inputs(
    masks: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, semantic: torch.Tensor
) -> None:
    if semantic.dim() != 2:
        raise VisionFlowError(f"semantic: expected [H, W], got shape {list(semantic.shape)}")
    count = scores.shape[0] if scores.dim() == 1 else -1
    if masks.dim() != 3 or masks.shape[1:] != semantic.shape:
        raise VisionFlowError(
            f"instance_masks: expected [N, {semantic.shape[0]}, {semantic.shape[1]}] "
            f"(the semantic map's size), got shape {list(masks.shape)}"
        )
    if count != masks.shape[0] or labels.shape != scores.shape:
        raise VisionFlowError(
            f"instance_scores / instance_labels: expected [{masks.shape[0]}] each (one per mask), "
            f"got {list(scores.shape)} and {list(labels.shape)}"
        )
