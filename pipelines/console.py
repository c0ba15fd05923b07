"""One console experience for every backend: a line per finished epoch where no progress bar can
redraw itself (a file, a pipe, a Ray worker's log stream), and none of Lightning's start-up notices.

    epoch  3/12  train/acc 0.9512  train/loss 0.1633  val/acc 0.9722  val/loss 0.1020  (1.9 s)
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from lightning.pytorch import Callback

#: Lightning's start-up notices that say nothing about this run (one of them advertises a product)
QUIET_NOTICES = (
    "litlogger",
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "`Trainer(val_check_interval",
    "log_every_n_steps",
)


class EpochReporter(Callback):
    """Calls :meth:`report` once per finished epoch with its metrics, and prints
    :func:`epoch_line` on rank 0 when ``verbose``.

    Epoch ``e`` is reported when epoch ``e + 1`` starts or training ends, i.e. after every
    ModelCheckpoint hook of epoch ``e`` has written ``last.ckpt`` and the task has logged the
    epoch's metrics (Lightning runs checkpoint callbacks after all other callbacks, and the
    module's own epoch-end hook after the callbacks')."""

    def __init__(self, verbose: bool = True):
        self.verbose = verbose
        self._pending: tuple[int, int, float] | None = None  # epoch, step, seconds
        self._started = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._flush(trainer)
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._pending = (
            trainer.current_epoch,
            trainer.global_step,
            time.perf_counter() - self._started,
        )

    def on_train_end(self, trainer, pl_module) -> None:
        self._flush(trainer)

    def _flush(self, trainer) -> None:
        if self._pending is None:
            return
        (epoch, step, seconds), self._pending = self._pending, None
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if getattr(v, "numel", lambda: 1)() == 1
        }
        if self.verbose and trainer.global_rank == 0:
            print(epoch_line(epoch, trainer.max_epochs, metrics, seconds), flush=True)
        self.report(trainer, epoch, step, metrics)

    def report(self, trainer: Any, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """What a subclass does with a finished epoch (e.g. report it to Ray Train)."""


def epoch_line(
    epoch: int, max_epochs: int | None, metrics: dict[str, float], seconds: float
) -> str:
    """``epoch  3/12  train/loss 0.2324  ...  val/acc 0.9722  (1.9 s)``: train and val metrics."""
    total = f"/{max_epochs}" if max_epochs and max_epochs > 0 else ""
    shown = sorted((k, v) for k, v in metrics.items() if k.startswith(("train/", "val/")))
    values = "  ".join(f"{k} {v:.4f}" for k, v in shown)
    return f"epoch {epoch + 1:>2}{total}  {values}  ({seconds:.1f} s)"


def console_callbacks(trainer_args: dict[str, Any]) -> tuple[list[Callback], dict[str, Any]]:
    """Callbacks and Trainer arguments for a fit in this process: where stdout is not a
    terminal, epoch lines replace the progress bar (unless the spec sets ``enable_progress_bar``)."""
    if sys.stdout.isatty() or "enable_progress_bar" in trainer_args:
        return [], {}
    return [EpochReporter()], {"enable_progress_bar": False}


class _QuietNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(notice in message for notice in QUIET_NOTICES)


def quiet_lightning_notices() -> None:
    """Drop :data:`QUIET_NOTICES` from Lightning's loggers and warnings (idempotent)."""
    import warnings

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietNotices) for f in logger.filters):
            logger.addFilter(_QuietNotices())
    warnings.filterwarnings("ignore", message=".*log_every_n_steps.*")
