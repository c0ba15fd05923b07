"""A model's per-image output (tensors) as COCO result dicts, the format pycocotools' loadRes reads.

One prediction is a dict with ``boxes`` [N, 4] XYXY in absolute pixels, ``scores`` [N] and
``labels`` [N], plus ``masks`` [N, H, W] or [N, 1, H, W] (binary, or probabilities cut at 0.5)
or ``rles`` (N compressed RLE dicts, as :func:`encode_masks` writes them) for segm and
``keypoints`` [N, 17, 3] or [N, 17, 2] (x, y[, visibility]) for keypoints. Boxes become
XYWH in float64 (``w = x2 - x1`` computed in float64). Torch tensors and numpy arrays both work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from visionflow.errors import DataError
from visionflow.evaluation.coco_input import NUM_KEYPOINTS

PREDICTION_HINT = (
    "a prediction is a dict of boxes [N, 4] XYXY pixels, scores [N], labels [N] "
    "(+ masks [N, H, W] for segm, keypoints [N, 17, 3] for keypoints) and an image_id, "
    "given in the prediction or in the matching target"
)


def is_result_dict(item: Any) -> bool:
    """A COCO result dict (``image_id``, ``category_id``, ...) rather than a model's output."""
    return isinstance(item, Mapping) and "category_id" in item


def label_lookup(
    label_to_category: Mapping[int, int] | Sequence[int] | None,
) -> Mapping[int, int] | None:
    """``{label: category_id}`` from a mapping or a sequence (index = label); None: labels are ids."""
    if label_to_category is None or isinstance(label_to_category, Mapping):
        return label_to_category
    return dict(enumerate(label_to_category))


def results_from_prediction(
    prediction: Mapping[str, Any],
    image_id: int,
    label_to_category: Mapping[int, int] | None,
    iou_type: str,
    where: str,
    num_keypoints: int = NUM_KEYPOINTS,
) -> list[dict]:
    """The COCO result dicts of one image's prediction (``where`` names it in errors);
    keypoints come ``num_keypoints`` per detection (COCO's 17 unless the data names others)."""
    scores = _array(prediction, "scores", where, np.float64, (None,))
    count = len(scores)
    labels = _array(prediction, "labels", where, np.int64, (count,))
    categories = _categories(labels, label_to_category, where)
    results = [
        {"image_id": image_id, "category_id": c, "score": s}
        for c, s in zip(categories, scores.tolist())
    ]
    if "boxes" in prediction or iou_type == "bbox":
        boxes = _array(prediction, "boxes", where, np.float64, (count, 4))
        boxes[:, 2:] -= boxes[:, :2]  # XYXY -> XYWH
        for result, box in zip(results, boxes.tolist()):
            result["bbox"] = box
    if iou_type == "segm" and "rles" in prediction:
        rles = list(prediction["rles"])
        if len(rles) != count:
            raise DataError(f"{where}: {len(rles)} 'rles' for {count} scores", hint=PREDICTION_HINT)
        for result, rle in zip(results, rles):
            result["segmentation"] = rle
    elif iou_type == "segm":
        masks = _array(prediction, "masks", where, None)
        masks = (
            masks[:, 0] if masks.ndim == 4 and masks.shape[1] == 1 else masks
        )  # [N, 1, H, W] -> [N, H, W]
        _check_shape(masks, (count, None, None), "masks", where)
        binary = masks > 0.5 if masks.dtype.kind == "f" else masks.astype(bool)
        for result, rle in zip(results, encode_masks(binary)):
            result["segmentation"] = rle
    if iou_type == "keypoints":
        keypoints = _array(prediction, "keypoints", where, np.float64)
        if keypoints.ndim != 3 or keypoints.shape[2] not in (2, 3):
            _check_shape(keypoints, (count, num_keypoints, 3), "keypoints", where)
        _check_shape(keypoints, (count, num_keypoints, keypoints.shape[2]), "keypoints", where)
        if keypoints.shape[2] == 2:  # no visibility: mark every point as labelled
            keypoints = np.concatenate([keypoints, np.ones_like(keypoints[..., :1])], axis=2)
        for result, points in zip(results, keypoints.reshape(count, 3 * num_keypoints).tolist()):
            result["keypoints"] = points
    return results


class PredictionLog:
    """The result dicts of the batches processed so far, grouped per (batch, image): ``groups`` is
    ``[(image_id, [result dicts])]`` in processing order, which pickles for a DDP gather."""

    def __init__(self, label_to_category: Mapping[int, int] | None, iou_type: str):
        self.label_to_category = label_to_category
        self.iou_type = iou_type
        self.clear()

    def clear(self) -> None:
        self.groups: list[tuple[int, list[dict]]] = []
        self._batches = 0

    def add(
        self, predictions: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]] | None
    ) -> None:
        """One batch of result dicts or model outputs (see the module docstring)."""
        batch: dict[int, list[dict]] = {}
        for index, prediction in enumerate(predictions):
            if is_result_dict(prediction):
                batch.setdefault(int(prediction.get("image_id", -1)), []).append(dict(prediction))
                continue
            where = f"<predictions>: batch #{self._batches}, prediction #{index}"
            image_id = image_id_of(
                prediction, targets[index] if targets is not None else None, where
            )
            batch.setdefault(image_id, []).extend(
                results_from_prediction(
                    prediction,
                    image_id,
                    self.label_to_category,
                    self.iou_type,
                    f"{where} (image_id {image_id})",
                )
            )
        self.groups.extend(batch.items())
        self._batches += 1

    @staticmethod
    def first_rank_per_image(ranks: list[list[tuple[int, list[dict]]]]) -> list[dict]:
        """The results of every rank's groups in rank order, an image's only from the first rank
        that has it: DDP's sampler pads the split by repeating images on later ranks."""
        claimed: set[int] = set()
        results = []
        for groups in ranks:
            mine = {image_id for image_id, _ in groups} - claimed
            results.extend(r for image_id, group in groups if image_id in mine for r in group)
            claimed |= mine
        return results


def encode_masks(masks: np.ndarray) -> list[dict]:
    """Compressed RLE dicts (``counts`` as str, JSON-ready) of binary masks [N, H, W]."""
    from hotcoco import mask as mask_utils

    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": rle["size"], "counts": rle["counts"].decode("ascii")} for rle in rles]


def image_id_of(prediction: Mapping[str, Any], target: Mapping[str, Any] | None, where: str) -> int:
    """The image id from the prediction, else from its target."""
    for source in (prediction, target or {}):
        if "image_id" in source:
            value = np.asarray(_to_numpy(source["image_id"])).reshape(-1)
            if value.shape == (1,) and value.dtype.kind in "iu":
                return int(value[0])
            raise DataError(
                f"{where}: 'image_id' must be one integer, got {source['image_id']!r}",
                hint=PREDICTION_HINT,
            )
    raise DataError(f"{where}: no 'image_id' in the prediction or its target", hint=PREDICTION_HINT)


def _to_numpy(value: Any) -> Any:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else value


def _array(
    prediction: Mapping[str, Any], key: str, where: str, dtype, shape: tuple | None = None
) -> np.ndarray:
    if key not in prediction:
        raise DataError(f"{where}: the prediction has no {key!r}", hint=PREDICTION_HINT)
    array = np.asarray(_to_numpy(prediction[key]))
    if dtype is not None:
        array = array.astype(dtype)
    if shape is not None:
        _check_shape(array, shape, key, where)
    return array


def _check_shape(array: np.ndarray, shape: tuple, key: str, where: str) -> None:
    """``shape`` with None for any size; the first dimension is the number of detections."""
    if array.ndim != len(shape) or any(
        s is not None and s != n for s, n in zip(shape, array.shape)
    ):
        expected = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise DataError(
            f"{where}: {key!r} has shape {list(array.shape)}, expected {expected}",
            hint=PREDICTION_HINT,
        )


def _categories(
    labels: np.ndarray, label_to_category: Mapping[int, int] | None, where: str
) -> list[int]:
    if label_to_category is None:
        return labels.tolist()
    try:
        return [int(label_to_category[label]) for label in labels.tolist()]
    except KeyError as error:
        raise DataError(
            f"{where}: label {error.args[0]} has no category id in label_to_category",
            hint="map every label the model can output to a COCO category id",
        ) from None
