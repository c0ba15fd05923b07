"""A CSV logger that keeps what a run has already logged.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when a new logger opens its folder.
A VisionFlow run opens the folder several times (the fit, then each evaluation stage, then again
on ``--resume``), and every one of them must add to the same file rather than replace it.
"""

from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


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
