"""VisionTask: Lightning's per-hook bookkeeping skips nn.Module.__setattr__, nothing else does.
DeviceReadback: a device tensor's values on the host, read later without a wait; LateFiniteCheck
on it. EpochScoring: validation and test epochs scored by the task's evaluator."""

import pytest
import torch
from torch import nn

from tests.tasks.conftest import quiet_trainer
from visionflow.evaluation import Evaluation
from visionflow.tasks.base import DeviceReadback, EpochScoring, LateFiniteCheck, VisionTask


def test_hook_bookkeeping_goes_straight_to_the_instance(monkeypatch):
    task = VisionTask()
    calls = []
    real = nn.Module.__setattr__
    monkeypatch.setattr(
        nn.Module,
        "__setattr__",
        lambda self, name, value: (calls.append(name), real(self, name, value)),
    )
    task._current_fx_name = "training_step"
    assert (
        task._current_fx_name == "training_step"
        and vars(task)["_current_fx_name"] == "training_step"
    )
    assert calls == []
    head = nn.Linear(2, 2)
    calls.clear()
    task.head = head  # anything else: nn.Module's own rules
    assert calls == ["head"] and dict(task.named_children())["head"] is head


def test_a_readback_on_the_cpu_gives_the_values_of_the_detached_tensor():
    weight = torch.tensor([1.5, float("nan")], requires_grad=True)
    readback = DeviceReadback(weight * 2)
    values = readback.values()
    assert values[0] == 3.0 and values[1] != values[1]  # nan
    assert DeviceReadback(torch.tensor([[1, 2], [3, 4]])).values() == [1, 2, 3, 4]


@pytest.mark.gpu
def test_a_readback_on_the_gpu_queues_its_copy_without_synchronizing():
    losses = torch.tensor([0.25, float("inf")], device="cuda")
    busy = torch.randn(4096, 4096, device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(4):
            busy = busy @ busy / 64  # queued work ahead of the copy
        readback = DeviceReadback(losses * 2)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert readback.values() == [0.5, float("inf")]


def test_a_late_finite_check_reports_the_values_queued_before():
    check = LateFiniteCheck()
    assert check.pop_non_finite() is None  # nothing queued
    check.queue(torch.tensor([1.0, 2.0]), context=("epoch 0", 1))
    assert check.pop_non_finite() is None  # finite
    check.queue(torch.tensor([1.0, float("inf")]), context=("epoch 0", 2))
    check.queue(torch.tensor([float("nan")]), context=("epoch 0", 3))  # replaces step 2's
    context, values = check.pop_non_finite()
    assert context == ("epoch 0", 3) and values[0] != values[0]
    assert check.pop_non_finite() is None  # popped


class CountingEvaluator:
    """Accuracy of (prediction, target) pairs of ints."""

    def reset(self):
        self.pairs = []

    def process(self, predictions, targets):
        self.pairs.extend(zip(predictions, targets))

    def evaluate(self):
        hits = sum(p == t for p, t in self.pairs)
        return Evaluation({"acc": hits / len(self.pairs)}, len(self.pairs), list(self.pairs))


class ParityTask(EpochScoring, VisionTask):
    """Predicts whether x[0] > 0 with a constant; targets: x[0] > 0 as ints."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))
        self.reset_epoch()

    def training_step(self, batch, batch_idx):
        return (self.bias**2).sum()

    def evaluation_step(self, batch):
        (x,) = batch
        return [1] * len(x), (x[:, 0] > 0).long().tolist()

    def make_evaluator(self):
        evaluator = CountingEvaluator()
        evaluator.reset()
        return evaluator

    def test_step(self, batch, batch_idx):
        self.keep_pairs(*self.evaluation_step(batch))


def test_epoch_scoring_logs_each_stage_once_over_the_epochs_pairs(tmp_path):
    x = torch.tensor([[1.0], [-1.0], [2.0], [3.0]])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=2)
    task = ParityTask()
    trainer = quiet_trainer(
        tmp_path,
        accelerator="cpu",
        enable_checkpointing=False,
        max_epochs=2,
        num_sanity_val_steps=1,
    )
    trainer.fit(task, loader, loader)
    assert trainer.callback_metrics["val/acc"] == pytest.approx(0.75)  # both batches, not sanity's
    assert len(task.last_result) == 4 and task._scored_pairs == []
    trainer.test(task, loader, verbose=False)
    assert trainer.callback_metrics["test/acc"] == pytest.approx(0.75)
