"""PQ of in-memory panoptic id maps, through the exact file-based :func:`evaluate_panoptic`.

    evaluator = PanopticEvaluator(category_ids=(1, 2, 4), class_names=("a", "b", "sky"),
                                  thing_classes=(True, True, False))
    evaluator.process([(ids, segments)], [(true_ids, true_segments)])  # one pair per image
    evaluator.evaluate().metrics        # PQ, SQ, RQ, PQ_things, ..., PQ_stuff, ...

An image is an id map int ``[H, W]`` (0 void) and its segments ``[(segment id, category id)]``.
Each processed image is written at once, prediction and truth, as COCO panoptic PNGs and JSON
records into a temporary folder (``reset`` makes a new one), so memory does not grow with the
split; images are numbered in the order they arrive, so shards fed in dataset order score alike.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visionflow.errors import DataError
from visionflow.evaluation import Evaluation
from visionflow.evaluation.panoptic import GROUPS, evaluate_panoptic

PanopticImage = tuple[Any, Sequence[tuple[int, int]]]  # (ids [H, W], [(segment id, category id)])
METRIC_SUFFIX = {"All": "", "Things": "_things", "Stuff": "_stuff"}


class PanopticEvaluator:
    """Scores predicted panoptic images against the true ones (see the module docstring);
    ``details`` of the evaluation: the :class:`PanopticResult` (per-class table included)."""

    def __init__(
        self,
        category_ids: Sequence[int],
        class_names: Sequence[str],
        thing_classes: Sequence[bool],
    ):
        if not len(category_ids) == len(class_names) == len(thing_classes):
            raise DataError(
                f"panoptic evaluator: category_ids, class_names and thing_classes differ in "
                f"length ({len(category_ids)}, {len(class_names)}, {len(thing_classes)})"
            )
        self.categories = [
            {"id": int(i), "name": name, "isthing": int(thing)}
            for i, name, thing in zip(category_ids, class_names, thing_classes)
        ]
        self._folder: tempfile.TemporaryDirectory | None = None
        self.reset()

    def reset(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
        self._folder = tempfile.TemporaryDirectory(prefix="visionflow-panoptic-")
        self._records: dict[str, list[dict[str, Any]]] = {"truth": [], "predictions": []}

    def process(
        self, predictions: Sequence[PanopticImage], targets: Sequence[PanopticImage]
    ) -> None:
        if len(predictions) != len(targets):
            raise DataError(
                f"panoptic evaluator: {len(predictions)} predictions for {len(targets)} images"
            )
        for predicted, truth in zip(predictions, targets):
            image_id = len(self._records["truth"]) + 1
            for side, (ids, segments) in (("predictions", predicted), ("truth", truth)):
                self._records[side].append(self._write(side, image_id, ids, segments))

    def _write(
        self, side: str, image_id: int, ids: Any, segments: Sequence[tuple[int, int]]
    ) -> dict[str, Any]:
        from PIL import Image

        ids = np.asarray(ids, dtype=np.int64)
        folder = Path(self._folder.name) / side
        folder.mkdir(exist_ok=True)
        file_name = f"{image_id:06d}.png"
        colors = np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1)
        Image.fromarray(colors.astype(np.uint8)).save(folder / file_name)
        return {
            "image_id": image_id,
            "file_name": file_name,
            "segments_info": [{"id": int(s), "category_id": int(c)} for s, c in segments],
        }

    def evaluate(self) -> Evaluation:
        """``PQ``, ``SQ``, ``RQ`` (x100, as panopticapi prints them) for all, ``_things``, ``_stuff``;
        a group with no category seen (no true and no predicted segment, panopticapi's ``n`` of 0:
        its average is undefined) is left out."""
        folder = Path(self._folder.name)
        count = len(self._records["truth"])
        if count == 0:
            raise DataError("panoptic evaluator: no images were processed")
        images = [{"id": i, "file_name": f"{i:06d}.png"} for i in range(1, count + 1)]
        truth = {
            "images": images,
            "annotations": self._records["truth"],
            "categories": self.categories,
        }
        (folder / "truth.json").write_text(json.dumps(truth))
        (folder / "predictions.json").write_text(
            json.dumps({"annotations": self._records["predictions"]})
        )
        result = evaluate_panoptic(
            folder / "truth.json",
            folder / "truth",
            folder / "predictions.json",
            folder / "predictions",
        )
        metrics = {
            f"{name.upper()}{METRIC_SUFFIX[group]}": 100 * float(result.metrics[group][name])
            for group in GROUPS
            if result.metrics[group]["n"] > 0
            for name in ("pq", "sq", "rq")
        }
        return Evaluation(metrics, count, result)
