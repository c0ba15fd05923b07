"""VisionTask: Lightning's per-hook bookkeeping skips nn.Module.__setattr__, nothing else does.
DeviceReadback: a device tensor's values on the host, read later without a wait."""

import pytest
import torch
from torch import nn

from visionflow.tasks.base import DeviceReadback, VisionTask


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
