"""Plots of a semantic segmentation run: per-class IoU bars (PNG + CSV) and sample overlays
(image | ground truth | prediction), written atomically into the run's plot folder."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from visionflow.batches import IGNORE_INDEX
from visionflow.evaluation.semantic import semantic_scores
from visionflow.plots import save_figure
from visionflow.rundir import atomic_write_text


def write_segmentation_plots(
    split: str,
    confusion: torch.Tensor,
    samples: tuple[torch.Tensor, ...] | None,
    class_names: Sequence[str],
    directory: Path,
) -> list[Path]:
    """``<split>_class_iou.png`` and ``.csv`` from ``confusion`` [K, K], and
    ``<split>_samples.png`` from ``samples = (images [N, C, H, W], masks [N, H, W],
    predicted [N, H, W])`` when given; their paths."""
    scores = semantic_scores(confusion)
    iou = [scores[f"IoU/{k}"] for k in range(len(class_names))]
    paths = [
        save_figure(
            plot_class_iou(iou, class_names, scores["mIoU"]),
            directory / f"{split}_class_iou.png",
            dpi=110,
        ),
        atomic_write_text(directory / f"{split}_class_iou.csv", class_iou_csv(iou, class_names)),
    ]
    if samples is not None:
        paths.append(
            save_figure(
                plot_samples(*samples, num_classes=len(class_names)),
                directory / f"{split}_samples.png",
                dpi=110,
            )
        )
    return paths


def class_iou_csv(iou: Sequence[float], class_names: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["class", "IoU"])
    writer.writerows(zip(class_names, iou))
    return buffer.getvalue()


def plot_class_iou(iou: Sequence[float], class_names: Sequence[str], miou: float):
    """A horizontal bar per class (classes without pixels drawn empty and marked n/a)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 1.2 + 0.3 * len(class_names)), layout="constrained")
    axes = figure.subplots()
    values = np.nan_to_num(np.asarray(iou, dtype=float))
    axes.barh(range(len(class_names)), values, color="tab:blue")
    for row, value in enumerate(iou):
        axes.text(
            min(values[row] + 0.01, 0.9),
            row,
            "n/a" if np.isnan(value) else f"{value:.3f}",
            va="center",
            fontsize=8,
        )
    axes.set_yticks(range(len(class_names)), labels=class_names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("IoU")
    axes.set_title(f"Per-class IoU (mIoU {miou:.3f})")
    return figure


def color_labels(labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """RGB float [H, W, 3] of labels [H, W]: one tab20 colour per class, white for ignore."""
    from matplotlib import colormaps

    palette = colormaps["tab20"](np.arange(max(num_classes, 1)) % 20)[:, :3]
    labels = labels.numpy()
    rgb = palette[np.clip(labels, 0, num_classes - 1)]
    rgb[labels == IGNORE_INDEX] = 1.0
    return rgb


def plot_samples(
    images: torch.Tensor, masks: torch.Tensor, predicted: torch.Tensor, num_classes: int
):
    """One row per sample: the image (rescaled to [0, 1] for display), its mask, the prediction."""
    from matplotlib.figure import Figure

    rows = len(images)
    figure = Figure(figsize=(7.5, 2.5 * rows), layout="constrained")
    axes = np.asarray(figure.subplots(rows, 3, squeeze=False))
    for row in range(rows):
        pixels = images[row].float().permute(1, 2, 0).numpy()
        pixels = (pixels - pixels.min()) / max(float(np.ptp(pixels)), 1e-6)
        shown = (
            pixels if pixels.shape[-1] == 3 else pixels[..., 0],
            color_labels(masks[row], num_classes),
            color_labels(predicted[row], num_classes),
        )
        for column, (picture, title) in enumerate(
            zip(shown, ("image", "ground truth", "prediction"))
        ):
            axes[row, column].imshow(picture, cmap="gray" if picture.ndim == 2 else None)
            axes[row, column].set_axis_off()
            if row == 0:
                axes[row, column].set_title(title)
    return figure
