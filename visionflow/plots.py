"""Training curves from a run's metrics.csv, as PNG files (matplotlib, Agg backend).

Lightning's CSVLogger writes one row per logging event with empty cells for the metrics not logged
at that step. Metrics are grouped by their name after the ``stage/`` prefix: ``train/loss`` and
``val/loss`` share ``loss.png``, ``train/acc`` and ``val/acc`` share ``acc.png``.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path

from visionflow.rundir import atomic_write_bytes

X_COLUMNS = ("epoch", "step")
CURVE_STAGES = ("train", "val")


def read_metric_series(metrics_csv: Path) -> dict[str, list[tuple[float, float]]]:
    """``{metric: [(epoch, value), ...]}`` for every metric column with at least one value.

    Step-level columns (``*_step``) are skipped; epoch-level values are keyed by epoch."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(metrics_csv, newline="") as file:
        for row in csv.DictReader(file):
            epoch = row.get("epoch") or ""
            if not epoch:
                continue
            for key, value in row.items():
                if key in X_COLUMNS or not value or key.endswith("_step") or key.startswith("lr"):
                    continue
                number = float(value)
                if math.isfinite(number):
                    series[key.removesuffix("_epoch")].append((float(epoch), number))
    return dict(series)


def plot_training_curves(metrics_csv: Path, out_dir: Path) -> list[Path]:
    """One PNG per metric group (``loss.png``, ``acc.png``...) with a line for train and one for
    val; returns the paths."""
    if not Path(metrics_csv).is_file():
        return []
    groups: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(dict)
    for name, points in read_metric_series(metrics_csv).items():
        stage, _, metric = name.rpartition("/")
        if stage in CURVE_STAGES:  # test/ and other one-off evaluations are single numbers
            groups[metric][stage] = points
    return [
        _plot_group(metric, lines, Path(out_dir) / f"{metric}.png")
        for metric, lines in sorted(groups.items())
        if any(len(points) > 0 for points in lines.values())
    ]


def _plot_group(metric: str, lines: dict[str, list[tuple[float, float]]], path: Path) -> Path:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), layout="tight")
    axes = figure.subplots()
    for stage, points in sorted(lines.items()):
        by_epoch = dict(points)  # the last value logged in an epoch wins
        xs = sorted(by_epoch)
        axes.plot(xs, [by_epoch[x] for x in xs], marker="o" if len(xs) < 30 else None, label=stage)
    axes.set(xlabel="epoch", ylabel=metric, title=metric)
    axes.grid(alpha=0.3)
    axes.legend()
    return save_figure(figure, path)


def save_figure(figure, path: Path, dpi: int = 100) -> Path:
    """Write a matplotlib ``Figure`` (made without pyplot, so nothing to close) as a PNG,
    atomically; return the path."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return atomic_write_bytes(path, buffer.getvalue())
