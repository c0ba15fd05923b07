"""The confusion matrix of a classification test as files: a PNG plot and a CSV table
(``confusion_matrix.png`` / ``.csv``), for the image and video classification tasks."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import torch

from visionflow.plots import save_figure
from visionflow.rundir import atomic_write_text

#: up to this many classes, the plot writes each cell's count
MAX_ANNOTATED_CLASSES = 20


def write_confusion_matrix(
    matrix: torch.Tensor, class_names: Sequence[str], directory: Path, counted: str = "images"
) -> list[Path]:
    """``confusion_matrix.png`` and ``.csv`` of ``matrix [K, K]`` in ``directory``, atomically;
    ``counted`` names what the cells count (the title says how many test ``counted``)."""
    return [
        save_figure(
            plot_confusion_matrix(matrix, class_names, counted),
            Path(directory) / "confusion_matrix.png",
            dpi=120,
        ),
        atomic_write_text(
            Path(directory) / "confusion_matrix.csv", confusion_matrix_csv(matrix, class_names)
        ),
    ]


def plot_confusion_matrix(
    matrix: torch.Tensor, class_names: Sequence[str], counted: str = "images"
):
    """A matplotlib Figure (Agg, no pyplot state) of ``matrix [K, K]``, rows = true class; counts
    written in the cells when K <= 20."""
    from matplotlib.figure import Figure

    k = len(class_names)
    side = min(4 + 0.45 * k, 24)
    figure = Figure(figsize=(side, side), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(matrix.numpy(), cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8)
    font = 8 if k <= MAX_ANNOTATED_CLASSES else max(3, int(160 / k))
    axes.set_xticks(range(k), labels=class_names, rotation=90, fontsize=font)
    axes.set_yticks(range(k), labels=class_names, fontsize=font)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"Confusion matrix ({int(matrix.sum())} test {counted})")
    if k <= MAX_ANNOTATED_CLASSES:
        threshold = matrix.max().item() / 2
        for row, counts in enumerate(matrix.tolist()):
            for col, count in enumerate(counts):
                axes.text(
                    col,
                    row,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=font,
                    color="white" if count > threshold else "black",
                )
    return figure


def confusion_matrix_csv(matrix: torch.Tensor, class_names: Sequence[str]) -> str:
    """CSV text: a header ``true\\predicted,<names>``, then one row per true class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true\\predicted", *class_names])
    for name, row in zip(class_names, matrix.tolist()):
        writer.writerow([name, *row])
    return buffer.getvalue()
