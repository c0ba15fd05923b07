"""A CSV logger that keeps what a run has already logged.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when a new logger opens its folder.
A VisionFlow run opens the folder several times (the fit, then each evaluation stage, then again
on ``--resume``), and every one of them must add to the same file rather than replace it. A fit
resumed from ``last.ckpt`` logs again what was logged after that checkpoint, so those rows go
first (:func:`drop_rows_from_step`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from visionflow.rundir import atomic_write_text


class AppendingExperimentWriter(ExperimentWriter):
    """Appends to ``metrics.csv``; a later metric name widens the header, old rows are kept."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = sorted(csv.DictReader(file).fieldnames or [])


class AppendingCSVLogger(CSVLogger):
    """``CSVLogger`` writing through :class:`AppendingExperimentWriter`."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment


def logging_step(checkpoint: dict[str, Any]) -> int:
    """The step a fit resumed from ``checkpoint`` (a loaded Lightning checkpoint) logs its first
    row at: the count of batches that stepped the optimizer, which Lightning logs as ``step``
    (``global_step`` counts optimizer steps, two a batch for a GAN)."""
    loop = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
    return int(loop.get("_batches_that_stepped", checkpoint["global_step"]))


def drop_rows_from_step(metrics_csv: Path, step: int) -> int:
    """Remove the rows of ``metrics_csv`` logged at ``step`` or later (after the checkpoint a fit
    resumes from, which logs them again); return how many. The file is replaced atomically, with
    its header and every earlier row as they were; a row without a numeric step is kept."""
    if not metrics_csv.is_file():
        return 0
    with open(metrics_csv, newline="") as file:
        reader = csv.DictReader(file)
        header, rows = reader.fieldnames or [], list(reader)
    kept = [row for row in rows if not _logged_from(row, step)]
    if len(kept) < len(rows):
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(metrics_csv, text.getvalue())
    return len(rows) - len(kept)


def _logged_from(row: dict[str, str], step: int) -> bool:
    try:
        return float(row.get("step") or "nan") >= step
    except ValueError:
        return False
