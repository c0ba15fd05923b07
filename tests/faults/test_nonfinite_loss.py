"""A loss that turns NaN mid-training stops the fit with one line naming epoch and step; the
checkpoint of the epoch before stays intact. With ``on_non_finite_loss: skip`` the bad step is
skipped instead, with a line naming it, and the fit goes on."""

from __future__ import annotations

import pytest
import torch

from visionflow.pipelines import run
from visionflow.pipelines.nonfinite import NonFiniteLossError
from visionflow.rundir import RunDirectory
from visionflow.tasks.classification import ImageClassificationTask

pytestmark = pytest.mark.slow


@pytest.fixture
def nan_at_step(monkeypatch):
    """Make the classification loss NaN from global step ``step`` on (0-based, as Lightning
    counts), or only there with ``once=True``."""

    def poison(step: int, once: bool = False) -> None:
        real = ImageClassificationTask.training_step

        def training_step(self, batch, batch_idx):
            loss = real(self, batch, batch_idx)
            bad = self.global_step == step if once else self.global_step >= step
            return loss * torch.nan if bad else loss

        monkeypatch.setattr(ImageClassificationTask, "training_step", training_step)

    return poison


def test_a_nan_loss_stops_the_fit_naming_epoch_and_step(fault_spec, nan_at_step, tmp_path):
    nan_at_step(25)  # 21 steps an epoch (1293 images / 64): epoch 1, its 5th step
    with pytest.raises(
        NonFiniteLossError,
        match=r"the training loss is nan at epoch 1, step 26:"
        r" training stopped",
    ) as caught:
        run(fault_spec(stages=["fit"]))
    assert len(str(caught.value).splitlines()) == 2  # the line and its hint
    (run_dir,) = (tmp_path / "runs" / "fault").iterdir()
    stopped = RunDirectory.open(run_dir)
    assert stopped.status()["state"] == "interrupted"
    checkpoint = torch.load(stopped.last_checkpoint, weights_only=True)
    assert checkpoint["epoch"] == 0 and checkpoint["global_step"] == 21  # epoch 0, untouched
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


def test_the_last_step_of_an_epoch_is_checked_before_its_checkpoint(
    fault_spec, nan_at_step, tmp_path
):
    nan_at_step(20)  # the last step of epoch 0: read at the epoch's end
    with pytest.raises(NonFiniteLossError, match="at epoch 0, step 21"):
        run(fault_spec(stages=["fit"]))
    (run_dir,) = (tmp_path / "runs" / "fault").iterdir()
    assert RunDirectory.open(run_dir).last_checkpoint is None  # no checkpoint of NaN weights


def test_skip_mode_skips_the_bad_step_and_the_fit_goes_on(fault_spec, nan_at_step, capsys):
    nan_at_step(25, once=True)
    results = run(fault_spec(stages=[{"fit": {"on_non_finite_loss": "skip"}}]))
    skipped = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert skipped == [
        "visionflow: warning: the training loss is nan at epoch 1, step 26: the step is "
        "skipped (1 so far)"
    ]
    finished = RunDirectory.open(results.run_dir)
    assert finished.status()["state"] == "completed"
    checkpoint = torch.load(finished.last_checkpoint, weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == 42  # every step counted
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())
    assert all(  # AdamW's moments never saw the NaN gradients
        torch.isfinite(moment).all()
        for state in checkpoint["optimizer_states"][0]["state"].values()
        for moment in state.values()
    )
