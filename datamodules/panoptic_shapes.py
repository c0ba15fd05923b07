"""Procedural shapes on a sky/ground scene, as a COCO panoptic dataset (PNG + segments JSON).

    make_panoptic_shapes_dataset("data/shapes_panoptic/train", images=300, seed=0, image_size=128)

writes ``images/000001.png ...``, ``panoptic/000001.png ...`` (segment id = R + 256 G + 256^2 B)
and ``panoptic.json`` (COCO panoptic: ``images``, ``annotations`` with ``segments_info``,
``categories`` with ``isthing``). Things are the circles, squares and triangles of the shapes
generator (ids 1-3, never overlapping); stuff is ``sky`` (id 4) above a wavy horizon and
``ground`` (id 5) below it, each with its own texture (vertical gradient vs. horizontal stripes),
so a semantic head must learn texture, not one flat colour. The same seed writes the same files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from visionflow.datamodules.generated_splits import check_generator_arguments, generator_info
from visionflow.datamodules.shapes import (
    CATEGORIES,
    MAX_SHAPES,
    circle_mask,
    contrasting_color,
    place_shape,
    png_bytes,
    polygon_mask,
)
from visionflow.rundir import atomic_write_bytes, atomic_write_json

GENERATOR = "visionflow.shapes_panoptic/1"
STUFF = ({"id": 4, "name": "sky"}, {"id": 5, "name": "ground"})
PANOPTIC_CATEGORIES = tuple({**c, "isthing": 1} for c in CATEGORIES) + tuple(
    {**c, "isthing": 0} for c in STUFF
)


def make_panoptic_shapes_dataset(
    out_dir: str | Path, images: int, seed: int = 0, image_size: int = 128
) -> Path:
    """Write ``images`` scenes of ``image_size`` px and their panoptic PNGs and JSON; return the
    JSON path."""
    check_generator_arguments("make_panoptic_shapes_dataset", images, image_size)
    rng = np.random.default_rng(seed)
    scenes = [write_scene(Path(out_dir), rng, i, image_size) for i in range(1, images + 1)]
    return atomic_write_json(
        Path(out_dir) / "panoptic.json",
        {
            "info": generator_info(GENERATOR, images, seed, image_size),
            "images": [image for image, _ in scenes],
            "annotations": [annotation for _, annotation in scenes],
            "categories": [dict(c) for c in PANOPTIC_CATEGORIES],
        },
    )


def write_scene(
    out_dir: Path, rng: np.random.Generator, image_id: int, size: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Draw one scene, write its image and panoptic PNG; return its COCO image and annotation."""
    pixels, segment_ids, segments = draw_scene(rng, size)
    file_name = f"{image_id:06d}.png"
    atomic_write_bytes(out_dir / "images" / file_name, png_bytes(pixels))
    atomic_write_bytes(out_dir / "panoptic" / file_name, png_bytes(id_colors(segment_ids)))
    image = {"id": image_id, "file_name": file_name, "height": size, "width": size}
    return image, {"image_id": image_id, "file_name": file_name, "segments_info": segments}


def draw_scene(
    rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """``(pixels uint8 [S, S, 3], segment ids int64 [S, S], segments_info)``: sky and ground
    split by a wavy horizon, then up to ``MAX_SHAPES`` shapes painted over them."""
    sky = horizon_mask(rng, size)
    pixels = np.where(
        sky[..., None], textured(rng, size, "gradient"), textured(rng, size, "stripes")
    )
    regions = [(STUFF[0]["id"], sky), (STUFF[1]["id"], ~sky)]
    occupied: list[list[float]] = []
    for _ in range(int(rng.integers(1, MAX_SHAPES + 1))):
        placed = place_shape(rng, size, occupied)
        if placed is None:
            continue
        category_id, polygon, box = placed
        mask = (
            circle_mask(box, size)
            if category_id == 1
            else polygon_mask([polygon.ravel().round(2).tolist()], size)
        )
        if mask.any():
            pixels[mask] = contrasting_color(rng, pixels[mask].mean(axis=0))
            regions.append((category_id, mask))
            occupied.append(box)
    return pixels.astype(np.uint8), *segments_of(regions)


def horizon_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """bool ``[S, S]``: True above a sine-wave horizon between 30% and 70% of the height."""
    level = rng.uniform(0.3, 0.7) * size
    amplitude = rng.uniform(0.02, 0.08) * size
    wavelength = rng.uniform(0.5, 1.5) * size
    phase = rng.uniform(0, 2 * math.pi)
    horizon = level + amplitude * np.sin(2 * math.pi * np.arange(size) / wavelength + phase)
    return np.arange(size)[:, None] < horizon[None, :]


def textured(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """float ``[S, S, 3]``: a random colour with a vertical gradient or horizontal stripes."""
    color = rng.uniform(40, 215, size=3)
    rows = np.arange(size)[:, None, None].astype(float)
    pattern = rows / size * 60 - 30 if kind == "gradient" else 25 * np.sign(np.sin(rows * 0.8))
    noise = rng.normal(0, 8, size=(size, size, 3))
    return np.clip(color + pattern + noise, 0, 255)


def segments_of(
    regions: list[tuple[int, np.ndarray]],
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Paint ``(category_id, mask)`` regions in order (later over earlier) into an id map
    ``[S, S]`` (ids 1..N, 0 void) and the COCO ``segments_info`` of the regions left visible."""
    ids = np.zeros(regions[0][1].shape, dtype=np.int64)
    for index, (_, mask) in enumerate(regions, start=1):
        ids[mask] = index
    segments = []
    for index, (category_id, _) in enumerate(regions, start=1):
        ys, xs = np.nonzero(ids == index)
        if len(ys) == 0:
            continue
        x0, y0 = int(xs.min()), int(ys.min())
        bbox = [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0]
        segments.append(
            {"id": index, "category_id": category_id, "area": len(ys), "bbox": bbox, "iscrowd": 0}
        )
    return ids, segments


def id_colors(ids: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W, 3]`` COCO panoptic colours of segment ids ``[H, W]`` (id = R + 256 G + 256^2 B)."""
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)
