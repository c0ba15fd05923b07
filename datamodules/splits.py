"""The dataset splits (``train``, ``val``, ``test``), which of them each Lightning stage reads, and
:class:`DatasetsBySplit`: Lightning's ``setup`` for datamodules whose splits are datasets."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

SPLITS = ("train", "val", "test")
SPLITS_BY_STAGE = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
}


class DatasetsBySplit:
    """Lightning's ``setup`` for a datamodule whose splits are datasets: each built once, on
    demand, by ``_build_dataset(split)`` into ``self.datasets``, after ``self.rank`` is set to
    the trainer's rank (per-rank augmentation seeds). The subclass sets ``datasets = {}``."""

    datasets: dict[str, Dataset]
    rank: int
    trainer: Any

    def setup(self, stage: str | None = None) -> None:
        """Build the splits ``stage`` needs (all three when ``stage`` is None)."""
        self.rank = self.trainer.global_rank if self.trainer is not None else 0
        for split in SPLITS_BY_STAGE.get(stage or "", SPLITS):
            self.dataset(split)

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (``train``, ``val`` or ``test``), built once."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if split not in self.datasets:
            self.datasets[split] = self._build_dataset(split)
        return self.datasets[split]

    def _build_dataset(self, split: str) -> Dataset:
        raise NotImplementedError
