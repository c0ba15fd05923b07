"""What goes into and comes out of the detection tasks' torchvision detector: the tasks'
argument checks, targets in torchvision's form, and detections in ours.

Labels: contiguous ``0..K-1`` in our targets and detections are ``1..K`` for the detector (0 is
its background).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import torch

from visionflow.batches import DetectionTarget
from visionflow.errors import DataError, SpecError, UnknownNameError
from visionflow.spec import check_arguments
from visionflow.tasks.nets.detectors import build_detector
from visionflow.tasks.nets.families import DETECTION_NETS

#: what the task sets in the detector's arguments itself
TASK_SET_NET_ARGS = ("num_classes", "num_keypoints")
MASK_THRESHOLD = 0.5


def check_task_arguments(h: Any) -> None:
    """Raise SpecError naming the first bad argument."""
    checks = [
        (h.num_classes >= 1, "num_classes", f"must be >= 1, got {h.num_classes}"),
        (
            h.in_channels == 3,
            "in_channels",
            f"detectors take RGB images, got {h.in_channels} channels",
        ),
        (
            h.category_ids is None or len(h.category_ids) == h.num_classes,
            "category_ids",
            f"{len(h.category_ids or [])} ids for num_classes={h.num_classes}",
        ),
        (h.overlay_images >= 0, "overlay_images", f"must be >= 0, got {h.overlay_images}"),
        (0 <= h.overlay_score <= 1, "overlay_score", f"must be in [0, 1], got {h.overlay_score}"),
    ]
    for ok, key, message in checks:
        if not ok:
            raise SpecError(f"{key}: {message}")


def detector_args(
    net: str,
    net_args: dict[str, Any] | None,
    image_size: list[int] | tuple[int, int] | None,
    restoring: bool,
    predicts: str | None = None,
) -> dict[str, Any]:
    """``net_args`` checked against :func:`build_detector`, with the resize defaulting to the data's
    fixed image size and no ``weights`` file read when a checkpoint is being restored. The net
    must predict what the task trains (``predicts``: None for boxes alone, "masks", ...)."""
    args = dict(net_args or {})
    for key in TASK_SET_NET_ARGS:
        if key in args:
            raise SpecError(f"net_args.{key}: set by the task")
    check_arguments(build_detector, args, "net_args", provided=TASK_SET_NET_ARGS, skip=1)
    try:
        entry = DETECTION_NETS.get(net)
    except UnknownNameError as error:
        raise error.under("net") from None
    if entry.tags.get("predicts") != predicts:
        fitting = [
            n
            for n in DETECTION_NETS.names()
            if DETECTION_NETS.get(n).tags.get("predicts") == predicts
        ]
        raise SpecError(
            f"net: {net!r} predicts {entry.tags.get('predicts') or 'boxes alone'}, this task "
            f"trains {predicts or 'boxes alone'}",
            hint="use one of: " + ", ".join(fitting),
        )
    if image_size is not None and not entry.tags.get("fixed_size"):
        args.setdefault("min_size", int(min(image_size)))
        args.setdefault("max_size", int(max(image_size)))
    if restoring:
        args.pop("weights", None)
    return args


def without_crowds(target: DetectionTarget) -> DetectionTarget:
    """``target`` without its crowd regions (every per-annotation field), ``iscrowd`` None."""
    if target.iscrowd is None:
        return target
    keep = ~target.iscrowd
    kept = {
        field.name: value[keep]
        for field in dataclasses.fields(target)
        if field.name not in ("image_id", "iscrowd")
        and (value := getattr(target, field.name)) is not None
    }
    return dataclasses.replace(target, iscrowd=None, **kept)


def to_model_target(
    target: DetectionTarget, fields: tuple[str, ...] = ()
) -> dict[str, torch.Tensor]:
    """Non-crowd boxes with the detector's labels (contiguous + 1; 0 is the background), and the
    target's ``fields`` (``masks`` [N, H, W], ``keypoints`` [N, K, 3]) of the same objects."""
    target = without_crowds(target)
    missing = [name for name in fields if getattr(target, name) is None]
    if missing:
        raise DataError(
            f"image {target.image_id}: the target has no {missing[0]}",
            hint="use a datamodule whose targets carry them (e.g. shapes_instances)",
        )
    extra = {name: getattr(target, name) for name in fields}
    return {"boxes": target.boxes, "labels": target.labels + 1, **extra}


def from_model_output(output: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detections with contiguous labels; the background label (never a real class) is dropped.
    Mask probabilities [N, 1, H, W] become masks bool [N, H, W] (cut at ``MASK_THRESHOLD``)."""
    real = output["labels"] > 0
    detections = {key: value[real] for key, value in output.items()}
    detections["labels"] = detections["labels"] - 1
    if "masks" in detections:
        detections["masks"] = detections["masks"][:, 0] > MASK_THRESHOLD
    return detections


def compact(detection: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``detection`` with its masks as compressed RLE (``rles``): what an epoch keeps to score."""
    if "masks" not in detection:
        return detection
    from visionflow.evaluation.coco_predictions import encode_masks

    kept = {key: value for key, value in detection.items() if key != "masks"}
    return {**kept, "rles": encode_masks(detection["masks"].numpy())}


def init_with_defaults(base_init: Callable[..., None], **defaults: Any) -> Callable[..., None]:
    """``base_init`` with other ``defaults``, as a subclass's ``__init__``: a task that only changes
    a default (its net) shows the spec checker every argument with its own default, and
    Lightning's ``save_hyperparameters`` in ``base_init`` still records every argument."""
    signature = inspect.signature(base_init, eval_str=True)  # the spec checker reads the types
    signature = signature.replace(
        parameters=[
            p.replace(default=defaults[p.name]) if p.name in defaults else p
            for p in signature.parameters.values()
        ]
    )

    def __init__(
        *args: Any, **kwargs: Any
    ) -> None:  # no super(): Lightning reads base_init's frame
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        base_init(*bound.args, **bound.kwargs)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    return __init__
