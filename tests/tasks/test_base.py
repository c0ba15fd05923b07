"""VisionTask: Lightning's per-hook bookkeeping skips nn.Module.__setattr__, nothing else does."""

from torch import nn

from visionflow.tasks.base import VisionTask


def test_hook_bookkeeping_goes_straight_to_the_instance(monkeypatch):
    task = VisionTask()
    calls = []
    real = nn.Module.__setattr__
    monkeypatch.setattr(nn.Module, "__setattr__", lambda self, name, value: (calls.append(name), real(self, name, value)))
    task._current_fx_name = "training_step"
    assert task._current_fx_name == "training_step" and vars(task)["_current_fx_name"] == "training_step"
    assert calls == []
    head = nn.Linear(2, 2)
    calls.clear()
    task.head = head                                   # anything else: nn.Module's own rules
    assert calls == ["head"] and dict(task.named_children())["head"] is head
