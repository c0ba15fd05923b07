"""What a detection run directory shows beside its numbers: overlays of the kept test samples, and
the evaluation's plots (precision-recall curves, confusion matrix, TIDE error breakdown).

Overlays are drawn at least ``OVERLAY_MIN_SIDE`` pixels on their short side, so that captions
(class and score, in a TrueType font) stay readable: ground truth in one colour, predictions in
another, each box captioned.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from visionflow.rundir import atomic_write_bytes

OVERLAY_MIN_SIDE = 512
TRUTH_COLOUR = "lime"
PREDICTION_COLOUR = "magenta"
FONT_SIZE = 14


def save_detection_artifacts(
    stage: str,
    directory: Path,
    samples: list[dict[str, torch.Tensor]],
    class_names: list[str],
    result: Any,
) -> list[Path]:
    """Overlays of ``samples`` and, after a test, the plots of the ``CocoResult`` ``result``."""
    paths = [
        atomic_write_bytes(
            Path(directory) / f"detections_{stage}_{index:02d}.png",
            overlay_png(sample, class_names),
        )
        for index, sample in enumerate(samples)
    ]
    if stage == "test" and result is not None:
        from visionflow.evaluation.coco_plots import plot_evaluation

        paths += plot_evaluation(result, Path(directory) / "evaluation_test")
    return paths


def overlay_png(sample: dict[str, torch.Tensor], class_names: list[str]) -> bytes:
    """PNG bytes of a sample's image with ground truth and predictions in two colours, captioned."""
    from matplotlib import font_manager
    from PIL import Image
    from torchvision.utils import draw_bounding_boxes

    image = sample["image"]
    zoom = max(1, -(-OVERLAY_MIN_SIDE // min(image.shape[-2:])))  # small images: enlarge them
    image = image.repeat_interleave(zoom, dim=-2).repeat_interleave(zoom, dim=-1)
    pixels = (image.clamp(0, 1) * 255).to(torch.uint8)  # [3, H, W]
    font = font_manager.findfont("DejaVu Sans")
    truth_labels = sample.get("truth_labels")
    truth_captions = (
        None
        if truth_labels is None
        else [f"GT {class_names[int(label)]}" for label in truth_labels]
    )
    captions = [
        f"{class_names[int(label)]} {float(score):.2f}"
        for label, score in zip(sample["labels"], sample["scores"])
    ]
    for boxes, labels, colour in (
        (sample["truth"], truth_captions, TRUTH_COLOUR),
        (sample["boxes"], captions, PREDICTION_COLOUR),
    ):
        pixels = draw_bounding_boxes(
            pixels,
            boxes * zoom,
            labels=labels,
            colors=colour,
            width=2,
            font=font,
            font_size=FONT_SIZE,
        )
    buffer = io.BytesIO()
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    return buffer.getvalue()
