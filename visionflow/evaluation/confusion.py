"""Semantic segmentation scores from one integer confusion matrix.

    scores = semantic_scores(confusion)   # confusion [K, K] int counts, rows = true class
    scores["mIoU"], scores["fwIoU"], scores["pixel_acc"], scores["mean_acc"], scores["IoU/3"]

The segmentation evaluator and the semantic segmentation task's epoch metrics both compute their
numbers here, so training logs and ``visionflow eval`` agree exactly. A class absent from both
the masks and the predictions has no IoU (NaN) and is left out of mIoU, as torchmetrics'
``MulticlassJaccardIndex`` and mmsegmentation do. Frequency-weighted IoU weights each class's IoU
by its share of the true pixels (Long et al., FCN, 2015).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def semantic_scores(confusion: Any) -> dict[str, float]:
    """``mIoU``, ``fwIoU``, ``pixel_acc``, ``mean_acc`` (per-class recall averaged) and
    ``IoU/<class index>`` of ``confusion`` [K, K] (numpy or torch); NaN where nothing counted."""
    confusion = np.asarray(confusion.cpu() if hasattr(confusion, "cpu") else confusion,
                           dtype=np.float64)
    true_pixels, predicted_pixels = confusion.sum(axis=1), confusion.sum(axis=0)
    hits = np.diagonal(confusion)
    union = true_pixels + predicted_pixels - hits
    iou = np.where(union > 0, hits / np.maximum(union, 1), np.nan)
    recall = np.where(true_pixels > 0, hits / np.maximum(true_pixels, 1), np.nan)
    total = confusion.sum()
    frequency = true_pixels / total if total else np.zeros_like(true_pixels)
    present = frequency > 0
    return {"mIoU": _nanmean(iou),
            "fwIoU": float((frequency[present] * iou[present]).sum()) if total else float("nan"),
            "pixel_acc": float(hits.sum() / total) if total else float("nan"),
            "mean_acc": _nanmean(recall),
            **{f"IoU/{k}": float(value) for k, value in enumerate(iou)}}


def _nanmean(values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    return float(present.mean()) if len(present) else float("nan")
