import csv
from pathlib import Path

import pytest
import torch

from visionflow.spec import parse_spec

TINY_DIGITS = {
    "name": "tiny_digits",
    "seed": 0,
    "task": {"name": "image_classification", "args": {"net": "lenet5", "lr": 0.003}},
    "data": {"name": "digits", "args": {"batch_size": 64}},
    "trainer": {"max_epochs": 1, "accelerator": "cpu", "enable_progress_bar": False},
    "stages": ["fit", "test"],
    "resources": {"backend": "local"},
}


@pytest.fixture
def tiny_spec(tmp_path):
    """A one-epoch LeNet-5 run on the real digits, writing into a temp folder."""

    def make(**changes):
        raw = {**TINY_DIGITS, "output_dir": str(tmp_path / "runs"), **changes}
        return parse_spec(raw)

    return make


def last_checkpoint_epoch(run_dir: Path) -> int:
    """The epoch of ``run_dir/checkpoints/last.ckpt``; -1 while there is none (or half of one)."""
    try:
        last = run_dir / "checkpoints" / "last.ckpt"
        return int(torch.load(last, map_location="cpu", weights_only=True)["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError, KeyError):
        return -1


def validated_epochs(run_dir: Path) -> set[int]:
    """The epochs whose validation loss ``run_dir/metrics.csv`` holds."""
    with open(run_dir / "metrics.csv", newline="") as file:
        return {
            int(float(row["epoch"]))
            for row in csv.DictReader(file)
            if row.get("epoch") and row.get("val/loss")
        }


def logged_twice(metrics_csv: Path) -> list[tuple[str, str, str]]:
    """The (epoch, step, metric) of metrics.csv that have a value in more than one row."""
    with open(metrics_csv, newline="") as file:
        rows = list(csv.DictReader(file))
    keys = [
        (row["epoch"], row["step"], name)
        for row in rows
        for name, value in row.items()
        if name not in ("epoch", "step") and value != ""
    ]
    return sorted({key for key in keys if keys.count(key) > 1})
