"""What every VisionFlow task shares: :class:`VisionTask`, the protocol between a task and the
pipeline; :class:`EpochScoring`, validation and test scored once an epoch by the task's evaluator;
:class:`DeviceReadback` and :class:`LateFiniteCheck`, for values a step must check without waiting
for the GPU.

A task family is one subclass of :class:`VisionTask` (docs/adding_a_task.md). The base gives it,
as TorchGeo's ``BaseTask`` does for its trainers:

- the ``optimizer`` and ``scheduler`` sub-configs (:mod:`visionflow.tasks.optim`) and the one
  ``configure_optimizers`` that builds them over :meth:`VisionTask.parameter_groups`;
- one checkpoint-restore path: inside :meth:`VisionTask.load_from_checkpoint`,
  :attr:`VisionTask.restoring_checkpoint` is true, so a task does not read initial-weights files
  (the checkpoint holds the trained weights; the file may be gone, the machine offline); every
  checkpoint also holds the global random states, which a resumed fit continues;
- every hook the pipeline calls, with a default where one makes sense (the list is in the class
  docstring); the pipeline calls them directly, never through ``getattr``.

Lightning sets ``module._current_fx_name`` before and after every hook it calls, some 40 times per
training step. On a LightningModule that assignment goes through ``nn.Module.__setattr__``, which
checks the parameter, buffer and submodule tables each time (about 4 us). The name is always a
string or None, never a tensor or a module, so writing it straight into the instance dict is the
same result; on a host-bound GPU step every microsecond of Python counts (docs/benchmarks.md).
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import inspect
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningModule

from visionflow.arguments import parameters_of
from visionflow.errors import SpecError
from visionflow.evaluation import Evaluation, Evaluator
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig, config_from, upgrade_flat_keys
from visionflow.tasks.random_state import random_states, restore_random_states

#: attributes Lightning assigns around every hook call; plain values, never tensors or modules
HOOK_BOOKKEEPING = frozenset({"_current_fx_name"})
_RESTORING_CHECKPOINT = contextvars.ContextVar("restoring_checkpoint", default=False)
#: the checkpoint entry of the global random states (:meth:`VisionTask.on_save_checkpoint`)
RANDOM_STATES_KEY = "random_states"


class VisionTask(LightningModule):
    """Base of every task: shared optimization, checkpoint restore, and the pipeline protocol.

    A subclass's ``__init__`` takes its own arguments plus ``optimizer: OptimizerConfig`` and
    ``scheduler: SchedulerConfig`` (its defaults there are the task's defaults), calls
    ``super().__init__(optimizer, scheduler)`` and ``self.save_hyperparameters()``. Arguments that
    the data provides (``num_classes``, ``class_names``, ...: the fields of the batch type's
    ``DatasetInfo``) are filled in by the pipeline unless the spec sets them.

    Hooks the pipeline calls (override what the task needs):

    - ``checkpoint_monitor``: ``(metric, "min" | "max")`` that picks the best checkpoint.
    - :meth:`parameter_groups`: what the optimizer trains (default: every trainable parameter).
    - :meth:`upgrade_arguments`: deprecated spec keys -> current ones, before the spec is checked.
    - :meth:`evaluation_step` and :meth:`make_evaluator`: the evaluation contract
      (:mod:`visionflow.evaluation`) behind the ``evaluate`` stage and ``visionflow eval run``.
    - :meth:`save_artifacts`: plots after a stage; :meth:`save_evaluation`: plots of an
      ``evaluate`` stage's result.

    A task whose validation and test epochs are scored by its own evaluator (detection, instance
    segmentation, pose, panoptic) mixes in :class:`EpochScoring`, which drives the two evaluation
    hooks above from Lightning's epoch hooks.
    """

    checkpoint_monitor: ClassVar[tuple[str, str]] = ("val/loss", "min")

    def __init__(
        self,
        optimizer: OptimizerConfig | Mapping[str, Any] | None = None,
        scheduler: SchedulerConfig | Mapping[str, Any] | None = None,
    ):
        super().__init__()
        defaults = _config_defaults(type(self))
        self.optimizer_config: OptimizerConfig = config_from(optimizer, defaults["optimizer"])
        self.scheduler_config: SchedulerConfig = config_from(scheduler, defaults["scheduler"])

    def __setattr__(self, name: str, value: Any) -> None:
        if name in HOOK_BOOKKEEPING:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def save_hyperparameters(self, *args: Any, **kwargs: Any) -> None:
        """Lightning's, with config dataclasses (optimizer, scheduler, ...) stored as plain dicts, so a
        checkpoint's hyperparameters load with ``weights_only=True``, and with the defaults of the
        arguments a subclass forwards through ``**kwargs`` (Lightning records the given ones)."""
        kwargs.setdefault("frame", inspect.currentframe().f_back)
        super().save_hyperparameters(*args, **kwargs)
        defaults = {} if args else _defaults(type(self), kwargs.get("ignore"))
        for hparams in (self._hparams, self._hparams_initial):
            for key, value in defaults.items():
                hparams.setdefault(key, copy.deepcopy(value))
            for key, value in hparams.items():
                if dataclasses.is_dataclass(value) and not isinstance(value, type):
                    hparams[key] = dataclasses.asdict(value)

    # ------------------------------------------------------------------ checkpoint restore

    @property
    def restoring_checkpoint(self) -> bool:
        """True while :meth:`load_from_checkpoint` builds this task: skip initial-weights files."""
        return _RESTORING_CHECKPOINT.get()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also the global random states (:mod:`visionflow.tasks.random_state`). A subclass that
        saves more calls ``super().on_save_checkpoint(checkpoint)``."""
        checkpoint[RANDOM_STATES_KEY] = random_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A fit resumed from ``checkpoint`` continues its random states, so it draws what the
        uninterrupted fit would have; loading it for inference leaves the caller's states alone.
        A subclass that restores more calls ``super().on_load_checkpoint(checkpoint)``."""
        states = checkpoint.get(RANDOM_STATES_KEY)
        if states is not None and self._trainer is not None and self._trainer.state.fn == "fit":
            restore_random_states(states)

    @classmethod
    def load_from_checkpoint(cls, *args: Any, **kwargs: Any) -> Any:
        """Lightning's, except that initial weights (``weights``, ``pretrained``) are not read
        again: the checkpoint already holds the trained weights."""
        token = _RESTORING_CHECKPOINT.set(True)
        try:
            return super().load_from_checkpoint(*args, **kwargs)
        finally:
            _RESTORING_CHECKPOINT.reset(token)

    # ------------------------------------------------------------------------ optimization

    @classmethod
    def upgrade_arguments(cls, args: Mapping[str, Any], path: str = "task.args") -> dict[str, Any]:
        """``args`` with deprecated keys replaced (one deprecation line each); the spec checks the
        result. Subclasses extend it for their own renamed keys. An argument of the task's own
        constructor that shares a flat key's name (an RL task's ``gamma``) is left alone."""
        own = {p.name for p in parameters_of(cls)}
        return upgrade_flat_keys(args, path, own=own)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups (dicts with ``params`` and optionally ``lr``, ``name``);
        by default one group of every parameter that requires a gradient."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_config.build(self.parameter_groups())
        scheduler = self.scheduler_config.build(optimizer, self.trainer)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    # -------------------------------------------------------------- evaluation and artifacts

    def evaluation_step(self, batch: Any) -> tuple[Any, Any]:
        """``(predictions, targets)`` of one batch as plain CPU data that pickles, for the
        evaluator of :meth:`make_evaluator`."""
        raise NotImplementedError(f"{type(self).__name__} has no evaluation contract")

    def make_evaluator(self) -> Evaluator:
        """A fresh evaluator (``reset / process / evaluate``) for :meth:`evaluation_step`'s pairs."""
        raise NotImplementedError(f"{type(self).__name__} has no evaluation contract")

    @property
    def supports_evaluation(self) -> bool:
        """Whether the task implements the evaluation contract (both hooks above)."""
        own = type(self)
        return (
            own.evaluation_step is not VisionTask.evaluation_step
            and own.make_evaluator is not VisionTask.make_evaluator
        )

    def save_artifacts(self, stage: str, directory: Path) -> list[Path]:
        """Plots after ``stage`` (``fit``, ``test``, ...) into ``directory``; their paths."""
        return []

    def save_evaluation(self, evaluation: Evaluation, directory: Path) -> list[Path]:
        """Plots of an ``evaluate`` stage's result into ``directory``; their paths."""
        return []


class EpochScoring:
    """Validation and test epochs scored by the task's evaluator, the same one as the ``evaluate``
    stage's, over every process's images; mixed in before the task's base::

        class ObjectDetectionTask(EpochScoring, LabelledDataTask): ...

    Each validation batch's :meth:`VisionTask.evaluation_step` pairs are kept (a ``test_step`` that
    also keeps samples for plots calls :meth:`keep_pairs` itself); at the epoch's end (not after
    the sanity check) the pairs of all ranks go through :meth:`VisionTask.make_evaluator`, each
    metric is logged as ``<stage>/<metric>`` (``val/mAP``, ``test/PQ``, ...) and the evaluation's
    ``details`` are kept as :attr:`last_result` for the task's plots. A task that keeps more per
    epoch extends :meth:`reset_epoch`.
    """

    #: ``details`` of the last scored epoch's evaluation (None before one)
    last_result: Any = None

    def keep_pairs(self, predictions: Sequence[Any], targets: Sequence[Any]) -> None:
        """Keep one batch's ``(prediction, target)`` pairs, plain CPU data, to score at the end."""
        self._scored_pairs.extend(zip(predictions, targets, strict=True))

    def reset_epoch(self) -> None:
        """Forget what the last epoch kept."""
        self._scored_pairs: list[tuple[Any, Any]] = []

    def score_epoch(self, stage: str) -> None:
        """Evaluate the pairs kept on every rank and log ``<stage>/<metric>`` for each metric."""
        pairs = gather(self._scored_pairs)
        evaluator = self.make_evaluator()
        evaluator.process([prediction for prediction, _ in pairs], [target for _, target in pairs])
        evaluation = evaluator.evaluate()
        self.last_result = evaluation.details
        for name, value in evaluation.metrics.items():
            self.log(f"{stage}/{name}", value, sync_dist=True)
        self.reset_epoch()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.keep_pairs(*self.evaluation_step(batch))

    def on_validation_epoch_start(self) -> None:
        self.reset_epoch()

    def on_test_epoch_start(self) -> None:
        self.reset_epoch()

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.score_epoch("val")

    def on_test_epoch_end(self) -> None:
        self.score_epoch("test")


def gather(items: list[Any]) -> list[Any]:
    """Every rank's ``items``, in rank order (this rank's alone without torch.distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return items
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]


class LabelledDataTask(VisionTask):
    """Base of the tasks over data of ``num_classes`` classes: the arguments that every
    ``DatasetInfo`` provides, declared once. A subclass names ``num_classes`` (it builds its net
    with it) and forwards the rest as ``**data`` (``visionflow.arguments.parameters_of`` reads them
    here for the spec): ``super().__init__(optimizer, scheduler, num_classes=num_classes, **data)``;
    after ``self.save_hyperparameters()`` they are in ``self.hparams``.

    ``in_channels``: channels of an input; ``image_size``: its ``(H, W)`` (None: sizes vary);
    ``class_names``: one per class (default ``"0"``, ``"1"``, ...; SpecError if their number is
    not ``num_classes``), kept as :attr:`class_names`.
    """

    def __init__(
        self,
        optimizer: OptimizerConfig | Mapping[str, Any] | None,
        scheduler: SchedulerConfig | Mapping[str, Any] | None,
        /,
        *,
        num_classes: int,
        in_channels: int = 3,
        image_size: list[int] | tuple[int, int] | None = None,
        class_names: list[str] | None = None,
    ):
        super().__init__(optimizer, scheduler)
        if class_names is not None and len(class_names) != num_classes:
            raise SpecError(f"class_names: {len(class_names)} names for num_classes={num_classes}")
        self.class_names = list(class_names or [str(i) for i in range(num_classes)])


def _defaults(task_type: type, ignore: str | Sequence[str] | None) -> dict[str, Any]:
    """``{argument: default}`` of ``task_type``'s constructor arguments, forwarded ones included
    (:func:`visionflow.arguments.parameters_of`), except those in ``ignore``."""
    ignored = {ignore} if isinstance(ignore, str) else set(ignore or ())
    return {
        p.name: p.default
        for p in parameters_of(task_type)
        if p.default is not p.empty and p.name not in ignored
    }


def _config_defaults(task_type: type) -> dict[str, Any]:
    """The defaults of ``optimizer`` and ``scheduler`` in ``task_type.__init__``'s signature."""
    parameters = inspect.signature(task_type.__init__).parameters
    defaults = {"optimizer": OptimizerConfig(), "scheduler": SchedulerConfig()}
    for name, default in defaults.items():
        parameter = parameters.get(name)
        if parameter is not None and isinstance(parameter.default, type(default)):
            defaults[name] = parameter.default
    return defaults


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


class LateFiniteCheck:
    """Values a training step must check for NaN or infinity, read one step late through a
    :class:`DeviceReadback` so that the check never waits for the GPU::

        bad = check.pop_non_finite()          # the values queued by the step before, if bad
        check.queue(losses, context=(epoch, step))
        if bad is not None: raise ...(bad)    # (context, values)

    ``context`` is whatever names the step in the error (its epoch, step, the losses' names).
    """

    def __init__(self) -> None:
        self._pending: tuple[Any, DeviceReadback] | None = None

    def queue(self, values: torch.Tensor, context: Any) -> None:
        """Start bringing ``values`` (any shape) to the host; replaces what was queued."""
        self._pending = (context, DeviceReadback(values))

    def pop_non_finite(self) -> tuple[Any, list[float]] | None:
        """``(context, values)`` of what was queued when a value is NaN or infinite, else None;
        the queue is empty afterwards."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        context, readback = pending
        values = readback.values()
        return None if all(math.isfinite(value) for value in values) else (context, values)
