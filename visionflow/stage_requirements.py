"""What a stage needs of the task and the data it runs on, declared where the stage is registered:

    @STAGES.register("understand", tasks=("image_classification",))  # these tasks only
    @STAGES.register("knn", batch=ImageClassificationBatch)           # data yielding this batch
    @STAGES.register("predict", task_hooks=("predict_step",))         # tasks that define these

The spec's validation checks them (:func:`check_stage_fits`), so a spec whose later stage cannot
run on its task or data is refused in one line naming the stage, before anything is built,
written or trained, rather than when that stage's turn comes after ``fit``.
"""

from __future__ import annotations

from typing import Any

from visionflow.errors import SpecError
from visionflow.registry import DATAMODULES, TASKS, Entry


def check_stage_fits(stage: Entry, task: Entry, data: Entry, where: str) -> None:
    """SpecError at ``where`` (``stages[2].understand``) when ``stage`` declares a need that
    ``task`` or ``data`` does not meet; a stage that declares none runs on anything."""
    _check_tasks(stage, task, where)
    _check_task_hooks(stage, task, where)
    _check_batch(stage, data, where)


def _check_tasks(stage: Entry, task: Entry, where: str) -> None:
    tasks = stage.tags.get("tasks")
    if tasks is None or task.name in tasks:
        return
    wanted = " or ".join(tasks)
    article = "an" if wanted[0] in "aeiou" else "a"
    raise SpecError(
        f"{where}: needs {article} {wanted} task, got {task.name}",
        hint=f"the {stage.name} stage runs on tasks: {', '.join(tasks)}",
    )


def _check_task_hooks(stage: Entry, task: Entry, where: str) -> None:
    for hook in stage.tags.get("task_hooks", ()):
        if isinstance(task.builder, type) and not _defines(task.builder, hook):
            fits = [e.name for e in TASKS.entries() if _defines(e.builder, hook)]
            raise SpecError(
                f"{where}: needs a task that defines {hook}, got {task.name}",
                hint=f"tasks with {hook}: " + (", ".join(fits) or "none registered"),
            )


def _defines(builder: Any, hook: str) -> bool:
    """Whether ``builder`` (a task class) has its own ``hook``, not LightningModule's default."""
    from lightning.pytorch import LightningModule

    return getattr(builder, hook, None) not in (None, getattr(LightningModule, hook, None))


def _check_batch(stage: Entry, data: Entry, where: str) -> None:
    batch = stage.tags.get("batch")
    yielded = data.tags.get("batch")
    if batch is None or yielded is batch:
        return
    fits = [e.name for e in DATAMODULES.entries() if e.tags.get("batch") is batch]
    raise SpecError(
        f"{where}: needs data yielding {batch.__name__}, got {data.name} "
        f"({getattr(yielded, '__name__', yielded)})",
        hint="datamodules that fit: " + (", ".join(fits) or "none registered"),
    )
