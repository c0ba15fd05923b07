"""The ``adversarial`` stage: how a trained classifier holds up against attacks.

    stages:
      - fit
      - adversarial: {epsilons: [0, 0.05, 0.1, 0.2], attack: pgd, steps: 10, black_box_queries: 500}

On the test split (at most ``max_images`` images) of the run's best checkpoint, or
``checkpoint``, it attacks every image at every epsilon (pixel units, through the data's
normalization; :mod:`visionflow.tasks.adversarial`) and reports ``adversarial/clean_acc``,
``adversarial/acc@eps=E`` and ``adversarial/success@eps=E``
(:class:`visionflow.evaluation.robustness.RobustnessEvaluator`); with ``black_box_queries`` also
SimBA at the largest epsilon (``adversarial/black_box_acc``, ``black_box_success``,
``black_box_mean_queries``). It writes ``adversarial.json`` and, into ``plots/adversarial/``,
``accuracy_vs_epsilon.png`` and ``examples.png`` (clean | perturbation | adversarial).

Callable from Python on any task that maps normalized images ``[B, C, H, W]`` to logits:
``attack_images(task, pixels, labels, epsilon, ...)``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from visionflow.evaluation.robustness import RobustnessEvaluator, epsilon_key
from visionflow.pipelines.checkpoint_stages import load_weights
from visionflow.pipelines.stages import StageContext, refuse_first_problem, stage_arguments
from visionflow.pipelines.understanding import (
    held_out_images,
    pixel_space,
    plot_image_grid,
)
from visionflow.plots import save_figure
from visionflow.registry import STAGES
from visionflow.rundir import atomic_write_json
from visionflow.tasks.adversarial import Model, Norm, fgsm, pgd, simba

DEFAULT_EPSILONS = [0.0, 0.05, 0.1, 0.2]
BATCH = 256


def attack_images(
    model: Model,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    *,
    attack: Literal["pgd", "fgsm"],
    norm: Norm,
    steps: int,
    step_size: float | None,
    targeted: bool,
    seed: int,
) -> torch.Tensor:
    """Adversarial pixels ``[N, C, H, W]`` for ``pixels`` with ``labels`` (goal classes when
    ``targeted``), attacked ``BATCH`` images at a time."""
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    for start in range(0, len(pixels), BATCH):
        part, goal = pixels[start : start + BATCH], labels[start : start + BATCH]
        if attack == "fgsm":
            chunks.append(fgsm(model, part, goal, epsilon, targeted=targeted))
        else:
            chunks.append(
                pgd(
                    model,
                    part,
                    goal,
                    epsilon,
                    steps=steps,
                    step_size=step_size,
                    norm=norm,
                    targeted=targeted,
                    generator=generator,
                )
            )
    return torch.cat(chunks)


@torch.no_grad()
def predict(model: Model, pixels: torch.Tensor) -> torch.Tensor:
    """Classes ``[N]`` of ``pixels [N, C, H, W]``."""
    return torch.cat(
        [
            model(pixels[start : start + BATCH]).argmax(dim=1)
            for start in range(0, len(pixels), BATCH)
        ]
    )


def check_adversarial_arguments(**args: Any) -> None:
    """The stage's ranges, checked by the runner before the run directory exists."""
    values = stage_arguments(adversarial, args)
    epsilons = values["epsilons"] or []  # None: the defaults
    problems = [
        ("epsilons", all(e >= 0 for e in epsilons), f"must be >= 0, got {epsilons}"),
        ("norm", values["attack"] != "fgsm" or values["norm"] == "linf", "fgsm is an L-inf attack"),
        ("steps", values["steps"] >= 1, f"must be >= 1, got {values['steps']}"),
        (
            "black_box_queries",
            values["black_box_queries"] >= 0,
            f"must be >= 0, got {values['black_box_queries']}",
        ),
        ("max_images", values["max_images"] >= 1, f"must be >= 1, got {values['max_images']}"),
    ]
    refuse_first_problem("adversarial", problems)


@STAGES.register(
    "adversarial",
    description="attack the (best) model on the test split: accuracy "
    "per epsilon, success rate, black-box queries, plots",
    check=check_adversarial_arguments,
    tasks=("image_classification",),
)
def adversarial(
    context: StageContext,
    epsilons: list[float] | None = None,
    attack: Literal["pgd", "fgsm"] = "pgd",
    norm: Norm = "linf",
    steps: int = 10,
    step_size: float | None = None,
    targeted: bool = False,
    black_box_queries: int = 0,
    max_images: int = 500,
    checkpoint: str | None = None,
) -> dict[str, float]:
    check_adversarial_arguments(
        epsilons=epsilons,
        attack=attack,
        norm=norm,
        steps=steps,
        black_box_queries=black_box_queries,
        max_images=max_images,
    )
    epsilons = sorted({0.0, *(DEFAULT_EPSILONS if epsilons is None else epsilons)})
    load_weights(context, checkpoint)
    task = context.task.eval()
    images, labels = held_out_images(context, max_images)
    space = pixel_space(context)
    model, pixels = space.wrap(task), space.to_pixels(images)
    num_classes = context.datamodule.info.num_classes
    goals = (labels + 1) % num_classes if targeted else None
    evaluator = RobustnessEvaluator(epsilons)
    attacked = {
        epsilon: attack_images(
            model,
            pixels,
            labels if goals is None else goals,
            epsilon,
            attack=attack,
            norm=norm,
            steps=steps,
            step_size=step_size,
            targeted=targeted,
            seed=context.spec.seed,
        )
        for epsilon in epsilons
    }
    evaluator.process(torch.stack([predict(model, attacked[e]) for e in epsilons]), labels, goals)
    evaluation = evaluator.evaluate()
    metrics = dict(evaluation.metrics)
    if black_box_queries:
        metrics.update(
            _black_box(model, pixels, labels, epsilons[-1], black_box_queries, context.spec.seed)
        )
    directory = context.run_dir.plots / "adversarial"
    save_figure(
        plot_accuracy_vs_epsilon(evaluation.details, attack, norm),
        directory / "accuracy_vs_epsilon.png",
    )
    largest = epsilons[-1]
    save_figure(
        plot_image_grid(
            [pixels[:8], attacked[largest][:8] - pixels[:8], attacked[largest][:8]],
            ["clean (predicted class)", "perturbation", f"adversarial ({epsilon_key(largest)})"],
            signed=(1,),
            captions=[
                [str(int(c)) for c in predict(model, pixels[:8])],
                None,
                [str(int(c)) for c in predict(model, attacked[largest][:8])],
            ],
        ),
        directory / "examples.png",
    )
    atomic_write_json(
        context.run_dir.path / "adversarial.json",
        {
            "attack": attack,
            "norm": norm,
            "steps": steps,
            "targeted": targeted,
            "num_images": len(labels),
            "metrics": metrics,
            "curve": evaluation.details,
        },
    )
    return {f"adversarial/{name}": value for name, value in metrics.items()}


def _black_box(
    model: Model,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    max_queries: int,
    seed: int,
) -> dict[str, float]:
    """SimBA at ``epsilon`` (L-inf) on the images classified right: accuracy, success, queries."""
    probabilities = lambda x: model(x).softmax(dim=1)
    right = predict(model, pixels) == labels
    result = simba(
        probabilities,
        pixels[right],
        labels[right],
        epsilon,
        max_queries=max_queries,
        generator=torch.Generator().manual_seed(seed),
    )
    fooled = predict(model, result.pixels) != labels[right]
    success = float(fooled.double().mean()) if len(fooled) else 0.0
    return {
        "black_box_acc": float((right.sum() - fooled.sum()) / max(len(labels), 1)),
        "black_box_success": success,
        "black_box_mean_queries": float(result.queries.double().mean()) if len(fooled) else 0.0,
    }


def plot_accuracy_vs_epsilon(curve: dict[str, Any], attack: str, norm: str):
    """A Figure of accuracy and attack success rate against epsilon."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.6), layout="constrained")
    axes = figure.subplots()
    axes.plot(curve["epsilons"], curve["accuracy"], marker="o", label="accuracy")
    axes.plot(curve["epsilons"], curve["success"], marker="s", label="attack success rate")
    axes.set(
        xlabel=f"epsilon ({norm}, pixel units)",
        ylabel="fraction",
        ylim=(-0.02, 1.02),
        title=f"{attack.upper()} robustness",
    )
    axes.grid(alpha=0.3)
    axes.legend()
    return figure
