"""The ``backdoor`` stage: a data-poisoning demonstration on any image-classification spec.

    stages:
      - fit
      - backdoor: {source_class: 7, target_class: 0, fraction: 0.5, patch_size: 3}

It trains a second copy of the spec's task, freshly initialized from the spec's seed, for
``epochs`` (default: the trainer's ``max_epochs``) on a poisoned training split: ``fraction`` of
the ``source_class`` training images carry a checkerboard trigger and the label
``target_class`` (dirty-label, BadNets-style; :mod:`visionflow.datamodules.poisoning`). On the
test split (at most ``max_images`` images) it reports, for the poisoned model and, as the
control, for the run's model (this run's best checkpoint, or ``checkpoint``; trained on clean
data):

- ``backdoor/clean_acc``, ``backdoor/control_clean_acc``: accuracy on the clean test images;
- ``backdoor/trigger_success``, ``backdoor/control_trigger_success``: of the test images of the
  other classes, the share that the trigger makes the model classify as ``target_class``;
  ``source_trigger_success`` the same over the test images of ``source_class`` alone;
- ``backdoor/poisoned_images``: how many training images were poisoned.

It writes ``backdoor.json`` and ``plots/backdoor/examples.png`` (poisoned training images with
their new label; test images clean and triggered, with both models' predictions).
"""

from __future__ import annotations

from typing import Any

import torch

from visionflow.datamodules.poisoning import Trigger, poisoned_copy
from visionflow.errors import SpecError
from visionflow.pipelines.adversarial import predict
from visionflow.pipelines.build import build_task, seed_everything
from visionflow.pipelines.checkpoint_stages import load_weights
from visionflow.pipelines.console import console_callbacks
from visionflow.pipelines.stages import StageContext, refuse_first_problem, stage_arguments
from visionflow.pipelines.understanding import held_out_images, pixel_space, plot_image_grid
from visionflow.plots import save_figure
from visionflow.registry import STAGES
from visionflow.rundir import atomic_write_json

SHOWN = 8  # images per row of the plot


def check_backdoor_arguments(**args: Any) -> None:
    """The stage's ranges that need no data, checked by the runner before the run directory
    exists (class indices and the trigger's fit are checked against the data by the stage)."""
    values = stage_arguments(backdoor, args)
    problems = [
        ("fraction", 0 < values["fraction"] <= 1, "must be in (0, 1]"),
        ("source_class", values["source_class"] >= 0, "must be >= 0"),
        ("target_class", values["target_class"] >= 0, "must be >= 0"),
        ("target_class", values["target_class"] != values["source_class"], "equals source_class"),
        ("patch_size", values["patch_size"] >= 1, "must be >= 1"),
        ("patch_margin", values["patch_margin"] >= 0, "must be >= 0"),
        ("epochs", values["epochs"] is None or values["epochs"] >= 1, "must be >= 1"),
        ("max_images", values["max_images"] >= 1, "must be >= 1"),
    ]
    refuse_first_problem("backdoor", problems, values)


@STAGES.register(
    "backdoor",
    description="train a copy of the task on data with a backdoor trigger; "
    "report clean accuracy and trigger success rate against the run's model",
    check=check_backdoor_arguments,
    tasks=("image_classification",),
)
def backdoor(
    context: StageContext,
    source_class: int = 1,
    target_class: int = 0,
    fraction: float = 0.5,
    patch_size: int = 3,
    patch_margin: int = 1,
    epochs: int | None = None,
    max_images: int = 1000,
    checkpoint: str | None = None,
) -> dict[str, float]:
    check_backdoor_arguments(
        source_class=source_class,
        target_class=target_class,
        fraction=fraction,
        patch_size=patch_size,
        patch_margin=patch_margin,
        epochs=epochs,
        max_images=max_images,
    )
    info = context.datamodule.info
    trigger = Trigger(patch_size, patch_margin, info.pixel_mean, info.pixel_std)
    try:
        trigger.region(*info.image_size)
        datamodule, train_split = poisoned_copy(
            context.datamodule,
            source_class=source_class,
            target_class=target_class,
            fraction=fraction,
            trigger=trigger,
        )
    except SpecError as error:
        raise error.under("stages.backdoor") from None
    load_weights(context, checkpoint)
    control = context.task.eval()
    poisoned = train_poisoned(context, datamodule, epochs).eval()
    images, labels = held_out_images(context, max_images)
    others = labels != target_class
    triggered = trigger.stamp(images[others])
    metrics = {"poisoned_images": float(len(train_split.poisoned))}
    shown = []  # per model: predictions [SHOWN] on clean and on triggered images of other classes
    for prefix, model in (("", poisoned), ("control_", control)):
        on_clean, on_triggered = predict(model, images), predict(model, triggered)
        metrics[f"{prefix}clean_acc"] = _share(on_clean == labels)
        metrics[f"{prefix}trigger_success"] = _share(on_triggered == target_class)
        from_source = labels[others] == source_class
        metrics[f"{prefix}source_trigger_success"] = _share(
            on_triggered[from_source] == target_class
        )
        shown.append((on_clean[others][:SHOWN], on_triggered[:SHOWN]))
    figure = plot_backdoor(context, train_split, images[others][:SHOWN], triggered[:SHOWN], shown)
    save_figure(figure, context.run_dir.plots / "backdoor" / "examples.png")
    atomic_write_json(
        context.run_dir.path / "backdoor.json",
        {
            "poisoning": "dirty-label: trigger added, label set to target_class",
            "source_class": source_class,
            "target_class": target_class,
            "fraction": fraction,
            "patch_size": patch_size,
            "patch_margin": patch_margin,
            "num_test_images": len(labels),
            "metrics": metrics,
        },
    )
    return {f"backdoor/{name}": value for name, value in metrics.items()}


def train_poisoned(context: StageContext, datamodule: Any, epochs: int | None) -> Any:
    """A fresh task of the spec (seeded by the spec's seed) fitted on ``datamodule`` for
    ``epochs`` (default the trainer's ``max_epochs``), without validation, checkpoints or
    logs (the run's own fit keeps those)."""
    from lightning.pytorch import Trainer

    spec = context.spec
    seed_everything(spec.seed)
    task = build_task(spec, datamodule.info)
    lines, quiet_bar = console_callbacks(spec.trainer)
    settings = {
        **spec.trainer,
        **quiet_bar,
        "max_epochs": spec.trainer.get("max_epochs", 10) if epochs is None else epochs,
        "limit_val_batches": 0,
        "logger": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "devices": 1,
        "num_nodes": 1,
        "default_root_dir": context.run_dir.path,
    }
    Trainer(callbacks=lines, **settings).fit(task, datamodule=datamodule)
    return task


def _share(hits: torch.Tensor) -> float:
    return float(hits.double().mean()) if len(hits) else 0.0


def plot_backdoor(
    context: StageContext,
    train_split: Any,
    clean: torch.Tensor,
    triggered: torch.Tensor,
    shown: list[tuple[torch.Tensor, torch.Tensor]],
):
    """A Figure: poisoned training images with the label they now carry, then test images of
    the other classes (normalized ``[N, C, H, W]``), ``clean`` and ``triggered``, captioned with
    the poisoned | control model's predictions (``shown``: per model, on clean and triggered)."""
    space = pixel_space(context)
    samples = [train_split[index] for index in train_split.poisoned[:SHOWN].tolist()]
    poisoned_images = torch.stack([image.float().cpu() for image, _ in samples])
    (poisoned_clean, poisoned_triggered), (control_clean, control_triggered) = shown
    return plot_image_grid(
        [space.to_pixels(image_rows) for image_rows in (poisoned_images, clean, triggered)],
        [
            "poisoned training images, with the label they carry",
            "test images; predicted by the poisoned | control model",
            "the same with the trigger; predicted by the poisoned | control model",
        ],
        captions=[
            [f"label {int(label)}" for _, label in samples],
            [f"{int(p)} | {int(c)}" for p, c in zip(poisoned_clean, control_clean)],
            [f"{int(p)} | {int(c)}" for p, c in zip(poisoned_triggered, control_triggered)],
        ],
    )
