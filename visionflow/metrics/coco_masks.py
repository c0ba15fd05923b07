"""Segmentations to RLE the way ``COCO.annToRLE`` does it, and RLE from mask tensors.

Polygons are rasterized with ``pycocotools.mask.frPyObjects`` and their parts merged, uncompressed
RLE (``counts`` a list) is compressed, and compressed RLE is used as it is: the same calls as
pycocotools, so the masks (and their IoUs) are the same bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from visionflow.metrics.coco_io import Records

_SEGMENTATION_HINT = ("a 'segmentation' is polygons [[x1, y1, x2, y2, ...], ...], uncompressed RLE "
                      "{size: [h, w], counts: [...]} or compressed RLE {size: [h, w], counts: '...'}")


def image_sizes(images: Records, image_ids: np.ndarray) -> np.ndarray:
    """[I, 2] (height, width) per sorted image id; -1 where an image has no height or width.

    Only polygons and uncompressed RLE need the size, so a missing one is an error only there.
    """
    sizes = {}
    for item in images.items:  # a repeated image id keeps its last record, like COCO.createIndex
        height, width = item.get("height"), item.get("width")
        valid = isinstance(height, int) and isinstance(width, int)
        sizes[item["id"]] = (height, width) if valid else (-1, -1)
    return np.array([sizes[int(i)] for i in image_ids], dtype=np.int64).reshape(-1, 2)


def to_rles(records: Records, segmentations: list[Any], image_index: np.ndarray,
            image_hw: np.ndarray) -> list[dict]:
    """One RLE dict per record, from its segmentation ([N] list, in the image of ``image_index``)."""
    return [_to_rle(records, index, segmentation, image_hw[image])
            for index, (segmentation, image) in enumerate(zip(segmentations, image_index))]


def _to_rle(records: Records, index: int, segmentation: Any, height_width: np.ndarray) -> dict:
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), (str, bytes)):
        size = segmentation.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            raise records.error(index, f"RLE 'size' must be [height, width], got {size!r}", _SEGMENTATION_HINT)
        return segmentation
    is_polygons = isinstance(segmentation, list)
    is_uncompressed = isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list)
    if not (is_polygons or is_uncompressed):
        raise records.error(index, f"'segmentation' is not polygons or RLE ({type(segmentation).__name__})",
                            _SEGMENTATION_HINT)
    height, width = (int(v) for v in height_width)
    if height < 0:
        raise records.error(index, "its image has no integer 'height' and 'width', needed to rasterize the "
                            "segmentation", "add 'height' and 'width' to every entry of the GT's 'images'")
    try:
        rles = mask_utils.frPyObjects(segmentation, height, width)
        return mask_utils.merge(rles) if is_polygons else rles
    except Exception as error:  # pycocotools raises bare Exception, TypeError, IndexError, ...
        raise records.error(index, f"'segmentation' cannot be rasterized ({error})", _SEGMENTATION_HINT) from None


def mask_areas(rles: list[dict]) -> np.ndarray:
    """[N] pixel count of each RLE, as float64.

    ``pycocotools.mask.area`` runs ``np.array((n,), dtype=np.uint8)`` inside, which numpy 2 rejects
    for n > 255, hence the chunks.
    """
    chunks = [mask_utils.area(rles[i:i + 255]) for i in range(0, len(rles), 255)]
    return np.concatenate(chunks).astype(np.float64) if chunks else np.zeros(0)


def encode_masks(masks: np.ndarray) -> list[dict]:
    """Compressed RLE dicts (``counts`` as str, JSON-ready) of binary masks [N, H, W]."""
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": rle["size"], "counts": rle["counts"].decode("ascii")} for rle in rles]
