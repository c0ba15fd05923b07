"""Precision-recall curves of a ``CocoResult`` as PNG files (matplotlib's Agg canvas, no display).

Each curve is pycocotools' interpolated precision at the 101 recall thresholds, averaged over
the categories that have GT (the entries > -1), at the largest maxDets.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from visionflow.metrics.coco_params import IOU_THRESHOLDS, RECALL_THRESHOLDS
from visionflow.plots import save_figure

if TYPE_CHECKING:
    from visionflow.metrics.coco import CocoResult


def mean_precision(precision: np.ndarray) -> np.ndarray:
    """[R] mean over every axis but recall of ``precision`` [T, R, K] (entries > -1 only; NaN if none)."""
    valid = precision > -1
    sums = np.where(valid, precision, 0.0).sum(axis=(0, 2))
    counts = valid.sum(axis=(0, 2))
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def plot_pr_curves(result: CocoResult, folder: str | Path) -> list[Path]:
    """Write ``pr_by_iou.png`` (IoU .50, .75 and the mean over .50:.95, area all) and
    ``pr_by_area.png`` (each area range, IoU .50:.95) into ``folder``; returns their paths."""
    folder = Path(folder)
    precision = result.precision[..., -1]  # [T, R, K, A] at the largest maxDets
    by_iou = {"IoU=.50:.95": mean_precision(precision[..., 0])}
    for iou in (.5, .75):
        by_iou[f"IoU={iou:.2f}"] = mean_precision(precision[np.where(IOU_THRESHOLDS == iou)[0], ..., 0])
    by_area = {f"area={label}": mean_precision(precision[..., a])
               for a, label in enumerate(result.params.area_labels)}
    title = f"COCO {result.iou_type}: precision-recall, maxDets={result.params.max_dets[-1]}"
    return [save_figure(_figure(by_iou, title), folder / "pr_by_iou.png"),
            save_figure(_figure(by_area, title), folder / "pr_by_area.png")]


def _figure(curves: dict[str, np.ndarray], title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, curve in curves.items():
        mean = np.nanmean(curve) if np.isfinite(curve).any() else float("nan")
        axes.plot(RECALL_THRESHOLDS, curve, label=f"{label} (AP {mean:.3f})")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left")
    figure.tight_layout()
    return figure
