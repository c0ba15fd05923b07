"""What every VisionFlow task shares: :class:`VisionTask`, a LightningModule with less per-step cost,
and :class:`DeviceReadback`, for values a step must check without waiting for the GPU.

Lightning sets ``module._current_fx_name`` before and after every hook it calls, some 40 times per
training step. On a LightningModule that assignment goes through ``nn.Module.__setattr__``, which
checks the parameter, buffer and submodule tables each time (about 4 us). The name is always a
string or None, never a tensor or a module, so writing it straight into the instance dict is the
same result; on a host-bound GPU step every microsecond of Python counts (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule

#: attributes Lightning assigns around every hook call; plain values, never tensors or modules
HOOK_BOOKKEEPING = frozenset({"_current_fx_name"})


class VisionTask(LightningModule):
    """A LightningModule whose hook bookkeeping skips ``nn.Module.__setattr__``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in HOOK_BOOKKEEPING:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


class DeviceReadback:
    """The values of a device tensor, brought to the host without stalling the GPU.

    Reading a CUDA tensor directly (``.item()``, ``bool(t)``, ``.tolist()``) waits for every kernel
    queued so far, so a training step that checks its own loss that way drains the GPU's queue
    each step. ``DeviceReadback(tensor)`` instead queues a copy into pinned host memory right
    behind the work that produces ``tensor`` and records an event there; :meth:`values`, called a
    step later, waits for that event alone (long done by then) and reads host memory. On the CPU
    it simply holds the tensor.
    """

    def __init__(self, tensor: torch.Tensor):
        tensor = tensor.detach()
        self._event: torch.cuda.Event | None = None
        if tensor.device.type == "cuda":
            self._host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            self._host.copy_(tensor, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host = tensor

    def values(self) -> list[float]:
        """The tensor's elements (flattened) as Python numbers."""
        if self._event is not None:
            self._event.synchronize()
        return self._host.flatten().tolist()
