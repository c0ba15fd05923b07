"""The plots of a ``CocoResult`` as PNG files: precision-recall curves, the confusion matrix and
the TIDE error breakdown.

Each curve is pycocotools' interpolated precision at the 101 recall thresholds, averaged over
the categories that have GT (the entries > -1), at the largest maxDets; an area range without GT
(every entry -1) gets no curve. The confusion matrix (IoU 0.5) and TIDE's error breakdown (the AP
each error type costs) come from the engine, drawn by hotcoco's own plot functions.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from visionflow.plots import save_figure

if TYPE_CHECKING:
    from visionflow.evaluation.coco import CocoResult

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # [T], pycocotools' own expressions
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, 101)  # [R]


def mean_precision(precision: np.ndarray) -> np.ndarray:
    """[R] mean over every axis but recall of ``precision`` [T, R, K] (entries > -1 only; NaN if none)."""
    valid = precision > -1
    sums = np.where(valid, precision, 0.0).sum(axis=(0, 2))
    counts = valid.sum(axis=(0, 2))
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def plot_evaluation(result: CocoResult, folder: str | Path) -> list[Path]:
    """PR curves, and for boxes and masks the confusion matrix and TIDE breakdown; the paths."""
    paths = plot_pr_curves(result, folder)
    if result.engine is not None and result.iou_type != "keypoints" and len(result.category_ids):
        paths += plot_diagnostics(result.engine, Path(folder))
    return paths


def plot_diagnostics(engine, folder: Path) -> list[Path]:
    """``confusion_matrix.png`` (IoU 0.5, row-normalized) and ``tide_errors.png``."""
    import matplotlib.pyplot as pyplot  # hotcoco's plots are pyplot figures
    from hotcoco import plot

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "confusion_matrix.png", folder / "tide_errors.png"]
    for draw, data, path in (
        (plot.confusion_matrix, engine.confusion_matrix(), paths[0]),
        (plot.tide_errors, engine.tide_errors(), paths[1]),
    ):
        with _font_fallback_quiet():
            figure, _ = draw(data, paper_mode=True)
            save_figure(figure, path)
        pyplot.close(figure)
    return paths


@contextlib.contextmanager
def _font_fallback_quiet() -> Iterator[None]:
    """hotcoco's style asks for font weights that the installed fonts lack; matplotlib then logs
    'findfont: Failed to find font weight ...' on stderr for every figure, noise to the user."""
    logger = logging.getLogger("matplotlib.font_manager")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def plot_pr_curves(result: CocoResult, folder: str | Path) -> list[Path]:
    """Write ``pr_by_iou.png`` (IoU .50, .75 and the mean over .50:.95, area all) and
    ``pr_by_area.png`` (each area range, IoU .50:.95) into ``folder``; returns their paths."""
    folder = Path(folder)
    precision = result.precision[..., -1]  # [T, R, K, A] at the largest maxDets
    by_iou = {"IoU=.50:.95": mean_precision(precision[..., 0])}
    for iou in (0.5, 0.75):
        by_iou[f"IoU={iou:.2f}"] = mean_precision(
            precision[np.isclose(IOU_THRESHOLDS, iou), ..., 0]
        )
    by_area = {
        f"area={label}": mean_precision(precision[..., a])
        for a, label in enumerate(result.area_labels)
        if (precision[..., a] > -1).any()
    }  # a range without GT has no curve
    title = f"{result.protocol.upper()} {result.iou_type}: precision-recall, maxDets={result.max_dets[-1]}"
    return [
        save_figure(_figure(by_iou, title), folder / "pr_by_iou.png"),
        save_figure(_figure(by_area, title), folder / "pr_by_area.png"),
    ]


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
