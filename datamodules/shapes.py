"""Procedural shapes: circles, squares and triangles on noisy backgrounds, as a real COCO dataset.

    make_shapes_dataset("data/shapes/train", images=300, seed=0, image_size=128)

writes ``images/000001.png ...`` and ``annotations.json`` (COCO instances: tight ``bbox`` XYWH,
``area`` of the mask, ``segmentation`` as polygons for squares and triangles and compressed RLE for
circles, category ids 1 circle, 2 square, 3 triangle). The same seed writes the same files.
Shapes never overlap, so every mask is exactly its visible shape.

Every shape also carries COCO ``keypoints``: its four extreme points (``KEYPOINT_NAMES``: top,
right, bottom, left; the middle of the mask's outermost pixels on that side, all visible), which
are the corners of a square, the vertices of a triangle (one vertex may be two extremes) and the
compass points of a circle. The categories name them, with ``left_``/``right_`` so that flips
swap them, and give the ``skeleton`` joining them.

``ShapesDetectionDataModule`` (``shapes_detection``) writes train/val/test splits into ``data_dir``
on ``prepare_data`` when they are missing or were made with other settings, then reads them as any
COCO dataset.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from visionflow.batches import DetectionBatch, InstanceBatch, KeypointBatch
from visionflow.datamodules.coco_detection import CocoDetectionDataModule
from visionflow.datamodules.generated_splits import (
    SPLITS,
    GeneratedImages,
    check_generator_arguments,
    generator_info,
)
from visionflow.registry import DATAMODULES
from visionflow.rundir import atomic_write_bytes, atomic_write_json

KEYPOINT_NAMES = ("top", "right_extreme", "bottom", "left_extreme")
SKELETON = ((1, 2), (2, 3), (3, 4), (4, 1))  # COCO style: 1-based keypoint indices
CATEGORIES = tuple(
    {"id": index, "name": name, "keypoints": list(KEYPOINT_NAMES), "skeleton": SKELETON}
    for index, name in enumerate(("circle", "square", "triangle"), 1)
)
GENERATOR = "visionflow.shapes/2"  # 2: keypoints
ANNOTATIONS_FILE = "annotations.json"  # in each split folder
MAX_SHAPES = 4
PLACEMENT_TRIES = 30
SIZE_RANGE = (0.15, 0.4)  # shape size as a fraction of the image side


def make_shapes_dataset(
    out_dir: str | Path, images: int, seed: int = 0, image_size: int = 128
) -> Path:
    """Write ``images`` PNGs of ``image_size`` px and their COCO annotations; return the JSON path."""
    check_generator_arguments("make_shapes_dataset", images, image_size)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    dataset: dict[str, Any] = {
        "info": generator_info(GENERATOR, images, seed, image_size),
        "images": [],
        "annotations": [],
        "categories": [
            {**c, "skeleton": [list(pair) for pair in c["skeleton"]]} for c in CATEGORIES
        ],
    }
    for image_id in range(1, images + 1):
        pixels, shapes = draw_image(rng, image_size)
        file_name = f"{image_id:06d}.png"
        atomic_write_bytes(out_dir / "images" / file_name, png_bytes(pixels))
        dataset["images"].append(
            {"id": image_id, "file_name": file_name, "height": image_size, "width": image_size}
        )
        for category_id, mask, segmentation in shapes:
            dataset["annotations"].append(
                annotation(
                    len(dataset["annotations"]) + 1, image_id, category_id, mask, segmentation
                )
            )
    return atomic_write_json(out_dir / ANNOTATIONS_FILE, dataset)


def draw_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple]]:
    """``(pixels uint8 [S, S, 3], [(category_id, mask bool [S, S], polygons or None), ...])``.

    Each mask is rasterized once (pycocotools for polygons, so the written polygons decode to
    exactly the painted pixels) and paints the image, so pixels, mask, box and area agree."""
    background = rng.integers(0, 256, size=3)
    noise = rng.normal(0, 12, size=(size, size, 3))
    pixels = np.clip(background + noise, 0, 255).astype(np.uint8)
    shapes, occupied = [], []
    for _ in range(int(rng.integers(1, MAX_SHAPES + 1))):
        placed = place_shape(rng, size, occupied)
        if placed is None:
            continue
        category_id, polygon, box = placed
        polygons = None if category_id == 1 else [polygon.ravel().round(2).tolist()]
        mask = circle_mask(box, size) if polygons is None else polygon_mask(polygons, size)
        if not mask.any():
            continue
        pixels[mask] = contrasting_color(rng, background)
        shapes.append((category_id, mask, polygons))
        occupied.append(box)
    return pixels, shapes


def circle_mask(box: list[float], size: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).ellipse(box, fill=1)
    return np.asarray(canvas, dtype=bool)


def polygon_mask(polygons: list[list[float]], size: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, size, size))
    return mask_utils.decode(rle).astype(bool)


def place_shape(rng: np.random.Generator, size: int, occupied: list[list[float]]):
    """``(category_id, polygon [V, 2], box [x0, y0, x1, y1])`` clear of ``occupied``, or None."""
    for _ in range(PLACEMENT_TRIES):
        side = rng.uniform(*SIZE_RANGE) * size
        x0, y0 = rng.uniform(1, size - side - 1, size=2)
        box = [x0, y0, x0 + side, y0 + side]
        if all(not boxes_touch(box, other) for other in occupied):
            category_id = int(rng.integers(1, len(CATEGORIES) + 1))
            return category_id, shape_polygon(rng, category_id, box), box
    return None


def boxes_touch(a: list[float], b: list[float], margin: float = 2.0) -> bool:
    return (
        a[0] < b[2] + margin
        and b[0] < a[2] + margin
        and a[1] < b[3] + margin
        and b[1] < a[3] + margin
    )


def shape_polygon(rng: np.random.Generator, category_id: int, box: list[float]) -> np.ndarray:
    """Vertices [V, 2] of a square (rotated, inscribed) or triangle in ``box``; [0, 2] for circles."""
    if category_id == 1:
        return np.zeros((0, 2))
    corners = 4 if category_id == 2 else 3
    center = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    radius = (box[2] - box[0]) / 2
    start = rng.uniform(0, 2 * math.pi)
    angles = start + np.arange(corners) * 2 * math.pi / corners
    return center + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def contrasting_color(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A random RGB color at least 120 away (L1) from the background."""
    while True:
        color = rng.integers(0, 256, size=3)
        if np.abs(color - background).sum() >= 120:
            return color


def annotation(
    annotation_id: int, image_id: int, category_id: int, mask: np.ndarray, polygons: list | None
) -> dict[str, Any]:
    """A COCO annotation: tight box of ``mask``, its area, polygons or (circles) compressed RLE."""
    from pycocotools import mask as mask_utils

    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    bbox = [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0]
    if polygons is None:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        polygons = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": bbox,
        "area": int(mask.sum()),
        "iscrowd": 0,
        "segmentation": polygons,
        "keypoints": extreme_points(mask),
        "num_keypoints": len(KEYPOINT_NAMES),
    }


def extreme_points(mask: np.ndarray) -> list[float]:
    """COCO keypoints ``[x, y, 2] * 4`` of ``mask`` [H, W] (bool): the middles of its topmost,
    rightmost, bottommost and leftmost pixels, in pixel-edge coordinates (a pixel's centre is
    ``+0.5``), in ``KEYPOINT_NAMES`` order."""
    ys, xs = np.nonzero(mask)
    sides = ((ys, ys.min(), xs), (xs, xs.max(), ys), (ys, ys.max(), xs), (xs, xs.min(), ys))
    points = []
    for along, extreme, across in sides:
        middle = float(across[along == extreme].mean()) + 0.5
        edge = float(extreme) + 0.5
        x, y = (middle, edge) if along is ys else (edge, middle)
        points += [round(x, 2), round(y, 2), 2]
    return points


def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def coco_files(generated_dir: Path) -> dict[str, Any]:
    """``CocoDetectionDataModule``'s file arguments for the split folders under ``generated_dir``
    (``<split>/images/``, ``<split>/annotations.json``)."""
    return {
        "root": str(generated_dir),
        "images": {split: f"{split}/images" for split in SPLITS},
        **{f"{split}_annotations": f"{split}/{ANNOTATIONS_FILE}" for split in SPLITS},
    }


class ShapesSplits(GeneratedImages):
    """The shapes generator's splits (COCO instances, ``coco_files``) and arguments."""

    info_file = ANNOTATIONS_FILE
    generator = GENERATOR
    generate = staticmethod(make_shapes_dataset)


class ShapesCocoReader(CocoDetectionDataModule):
    """The COCO reader under ``shapes_detection``, after ``ShapesSplits`` in its bases: the
    split folders under ``generated_dir`` with the loader arguments a generated dataset takes
    (its layout and ``drop_empty_images`` are fixed)."""

    generated_dir: Path

    def __init__(
        self,
        image_size: int,
        batch_size: int = 8,
        num_workers: int = 0,
        masks: bool = False,
        transforms: dict[str, Any] | None = None,
        seed: int = 0,
    ):
        super().__init__(
            **coco_files(self.generated_dir),
            image_size=image_size,
            batch_size=batch_size,
            num_workers=num_workers,
            masks=masks,
            transforms=transforms,
            drop_empty_images=False,
            seed=seed,
        )


@DATAMODULES.register("shapes_detection", batch=DetectionBatch)
class ShapesDetectionDataModule(ShapesSplits, ShapesCocoReader):
    """Procedural circles, squares and triangles (COCO format, made on first use): boxes and masks."""


@DATAMODULES.register("shapes_instances", batch=InstanceBatch)
class ShapesInstancesDataModule(ShapesDetectionDataModule):
    """Procedural shapes with every object's mask, for instance segmentation: the same arguments
    as ``shapes_detection``; masks are read whatever ``masks`` says."""

    batch_type = InstanceBatch


@DATAMODULES.register("shapes_keypoints", batch=KeypointBatch)
class ShapesKeypointsDataModule(ShapesDetectionDataModule):
    """Procedural shapes with their four extreme points as named keypoints, for pose: the same
    arguments as ``shapes_detection``; keypoints are read whatever ``keypoints`` says."""

    batch_type = KeypointBatch
