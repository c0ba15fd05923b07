"""What a detection run directory shows beside its numbers: overlays of the kept test samples, and
the evaluation's plots (precision-recall curves, confusion matrix, TIDE error breakdown).

Overlays are drawn at least ``OVERLAY_MIN_SIDE`` pixels on their short side, so that captions
(class and score, in a TrueType font) stay readable: ground truth in one colour, predictions in
another, each box captioned; instance masks are filled translucent and keypoints drawn as dots
joined by the skeleton, in the same two colours (ground truth: only its labelled keypoints).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionflow.rundir import atomic_write_bytes

OVERLAY_MIN_SIDE = 512
TRUTH_COLOUR = "lime"
PREDICTION_COLOUR = "magenta"
FONT_SIZE = 14
MASK_ALPHA = 0.35
KEYPOINT_RADIUS = 4


def save_detection_artifacts(
    stage: str,
    directory: Path,
    samples: list[dict[str, torch.Tensor]],
    class_names: list[str],
    result: Any,
    skeleton: list[tuple[int, int]] | None = None,
) -> list[Path]:
    """Overlays of ``samples`` and, after a test, the plots of the ``CocoResult`` ``result``."""
    paths = [
        atomic_write_bytes(
            Path(directory) / f"detections_{stage}_{index:02d}.png",
            overlay_png(sample, class_names, skeleton or []),
        )
        for index, sample in enumerate(samples)
    ]
    if stage == "test" and result is not None:
        paths += plot_results(result, Path(directory) / "evaluation_test")
    return paths


def plot_results(result: Any, directory: Path) -> list[Path]:
    """The plots of a ``CocoResult``, or of each in ``{iou_type: CocoResult}`` (a sub-folder each)."""
    from visionflow.evaluation.coco_plots import plot_evaluation

    if not isinstance(result, dict):
        return plot_evaluation(result, directory)
    return [
        path
        for iou_type, one in result.items()
        for path in plot_evaluation(one, Path(directory) / iou_type)
    ]


def with_masks(pixels: torch.Tensor, masks: torch.Tensor | None, colour: str) -> torch.Tensor:
    """``pixels`` uint8 [3, H, W] with ``masks`` [N, H, W] (any dtype, nonzero inside) filled."""
    from torchvision.utils import draw_segmentation_masks

    if masks is None or len(masks) == 0:
        return pixels
    return draw_segmentation_masks(pixels, masks.bool(), alpha=MASK_ALPHA, colors=colour)


def zoomed(tensor: torch.Tensor, zoom: int) -> torch.Tensor:
    """``tensor`` [..., H, W] enlarged ``zoom`` times by repeating pixels."""
    return tensor.repeat_interleave(zoom, dim=-2).repeat_interleave(zoom, dim=-1)


def with_keypoints(
    pixels: torch.Tensor, keypoints: torch.Tensor, skeleton: list[tuple[int, int]], colour: str
) -> torch.Tensor:
    """``pixels`` uint8 [3, H, W] with ``keypoints`` [N, K, 3] (x, y, visibility) drawn as dots
    joined by ``skeleton`` (0-based pairs), all in ``colour``; points of visibility 0 (not
    labelled) are left out. (torchvision's ``draw_keypoints`` draws every line white.)"""
    from PIL import Image, ImageDraw

    image = Image.fromarray(pixels.permute(1, 2, 0).numpy())
    draw = ImageDraw.Draw(image)
    for points in keypoints.tolist():
        for a, b in skeleton:
            if points[a][2] > 0 and points[b][2] > 0:
                draw.line([tuple(points[a][:2]), tuple(points[b][:2])], fill=colour, width=2)
        for x, y, visibility in points:
            if visibility > 0:
                draw.ellipse(
                    [
                        x - KEYPOINT_RADIUS,
                        y - KEYPOINT_RADIUS,
                        x + KEYPOINT_RADIUS,
                        y + KEYPOINT_RADIUS,
                    ],
                    fill=colour,
                )
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def overlay_png(
    sample: dict[str, torch.Tensor],
    class_names: list[str],
    skeleton: list[tuple[int, int]] | None = None,
) -> bytes:
    """PNG bytes of a sample's image with ground truth and predictions in two colours, captioned."""
    from matplotlib import font_manager
    from PIL import Image, ImageFont
    from torchvision.utils import draw_bounding_boxes

    image = sample["image"]
    zoom = max(1, -(-OVERLAY_MIN_SIDE // min(image.shape[-2:])))  # small images: enlarge them
    pixels = (zoomed(image, zoom).clamp(0, 1) * 255).to(torch.uint8)  # [3, H, W]
    for key, colour in (("truth_masks", TRUTH_COLOUR), ("masks", PREDICTION_COLOUR)):
        if key in sample:
            pixels = with_masks(pixels, zoomed(sample[key], zoom), colour)
    for key, colour in (("truth_keypoints", TRUTH_COLOUR), ("keypoints", PREDICTION_COLOUR)):
        if key in sample:
            scale = torch.tensor([zoom, zoom, 1.0])  # x, y grow with the image; visibility not
            pixels = with_keypoints(pixels, sample[key] * scale, skeleton or [], colour)
    truth_labels = sample.get("truth_labels")
    truth_captions = (
        [""] * len(sample["truth"])
        if truth_labels is None
        else [f"GT {class_names[int(label)]}" for label in truth_labels]
    )
    captions = [
        f"{class_names[int(label)]} {float(score):.2f}"
        for label, score in zip(sample["labels"], sample["scores"])
    ]
    for boxes, colour in ((sample["truth"], TRUTH_COLOUR), (sample["boxes"], PREDICTION_COLOUR)):
        pixels = draw_bounding_boxes(pixels, boxes * zoom, colors=colour, width=2)
    picture = Image.fromarray(pixels.permute(1, 2, 0).numpy())
    font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), FONT_SIZE)
    with_captions(picture, sample["truth"] * zoom, truth_captions, TRUTH_COLOUR, font, below=True)
    with_captions(picture, sample["boxes"] * zoom, captions, PREDICTION_COLOUR, font, below=False)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def with_captions(
    picture: Any, boxes: torch.Tensor, captions: list[str], colour: str, font: Any, below: bool
) -> None:
    """Write each box's caption (``boxes`` ``[N, 4]`` XYXY in ``picture``'s pixels) in ``colour`` on
    a dark band, outside the box: ground truth under its bottom edge, predictions over its top
    edge, so the two stay readable where the boxes coincide."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(picture)
    for (left, top, _, bottom), caption in zip(boxes.tolist(), captions):
        if not caption:
            continue
        width, height = draw.textbbox((0, 0), caption, font=font)[2:]
        y = bottom + 1 if below else top - height - 3
        y = min(max(0, y), picture.height - height - 2)
        x = min(max(0, left), picture.width - width - 2)
        draw.rectangle((x, y, x + width + 2, y + height + 2), fill="black")
        draw.text((x + 1, y), caption, fill=colour, font=font)
