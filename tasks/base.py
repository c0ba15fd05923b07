"""What every VisionFlow task shares: :class:`VisionTask`, a LightningModule with less per-step cost.

Lightning sets ``module._current_fx_name`` before and after every hook it calls, some 40 times per
training step. On a LightningModule that assignment goes through ``nn.Module.__setattr__``, which
checks the parameter, buffer and submodule tables each time (about 4 us). The name is always a
string or None, never a tensor or a module, so writing it straight into the instance dict is the
same result; on a host-bound GPU step every microsecond of Python counts (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

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
