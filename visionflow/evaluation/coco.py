"""COCO (and LVIS) evaluation on hotcoco, bit for bit pycocotools' ``COCOeval``, after our checks.

    result = evaluate_coco("instances_val2017.json", "detections.json", iou_type="bbox")
    print("\\n".join(result.summary_lines()))

    evaluator = CocoEvaluator("instances_val2017.json", iou_type="bbox", label_to_category=ids)
    evaluator.process(model_outputs, targets)   # per batch, on every DDP rank
    result = evaluator.evaluate()               # gathers all ranks' predictions, then scores

The inputs are checked first (:mod:`visionflow.evaluation.coco_input`: one clear line per bad
record); hotcoco (Rust) then matches, accumulates and summarizes. ``protocol="lvis"`` is LVIS's
federated evaluation (lvis-api's ``LVISEval``: 300 detections per image, rare/common/frequent AP).
How it stays exact: docs/coco_evaluation.md.
"""

from __future__ import annotations

import math
import re
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from visionflow.errors import DataError, SpecError
from visionflow.evaluation.coco_input import (
    CategoryTable,
    GroundTruth,
    load_ground_truth,
)
from visionflow.evaluation.coco_predictions import PredictionLog, label_lookup
from visionflow.evaluation.coco_results import Results, decoding, load_results

PROTOCOLS = ("coco", "lvis")
LVIS_MAX_DETS = 300  # lvis-api's LVISResults default: the top 300 detections of each image
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # [T], pycocotools' own expression


@dataclass(frozen=True)
class CocoResult:
    """The outcome of one evaluation; the arrays are pycocotools' ``COCOeval.eval``.

    ``stats`` [S] in the engine's order, named by ``stat_names`` (pycocotools' 12, 10 for
    keypoints, LVIS's 13); ``precision`` and ``scores`` [T=10, R=101, K, A, M], ``recall``
    [T, K, A, M], K the GT categories sorted by id (``category_ids``), A ``area_labels``, M
    ``max_dets``. ``engine`` is hotcoco's accumulated ``COCOeval``: the arrays are read from it
    on first use (a summary alone never copies them out), and it serves the diagnostics (TIDE,
    confusion matrix).
    """

    iou_type: str
    protocol: str
    stats: np.ndarray
    stat_names: tuple[str, ...]
    lines: tuple[str, ...]
    category_ids: np.ndarray
    category_names: tuple[str, ...]
    area_labels: tuple[str, ...]
    max_dets: tuple[int, ...]
    engine: Any = field(repr=False, compare=False)
    timing: dict[str, float] = field(default_factory=dict)

    @cached_property
    def _tables(self) -> dict[str, Any]:
        return self.engine.eval

    @property
    def precision(self) -> np.ndarray:
        return self._tables["precision"]

    @property
    def recall(self) -> np.ndarray:
        return self._tables["recall"]

    @property
    def scores(self) -> np.ndarray:
        return self._tables["scores"]

    def summary_lines(self) -> list[str]:
        """pycocotools' (or lvis-api's) summary, one line per stat."""
        return list(self.lines)

    def defined_stats(self) -> dict[str, float]:
        """The stats by name, without those undefined for the data (-1: no GT in that range)."""
        return {
            name: float(value) for name, value in zip(self.stat_names, self.stats) if value > -1
        }

    @property
    def per_category_ap(self) -> dict[int, float]:
        """AP@[.50:.95] (area all, the largest maxDets) per category id; NaN without GT."""
        return dict(zip(self.category_ids.tolist(), self._per_category(None).tolist()))

    def per_category(self) -> dict[int, dict[str, Any]]:
        """Per category id: its name and AP, AP50, AP75 (NaN without GT)."""
        columns = [self._per_category(iou).tolist() for iou in (None, 0.5, 0.75)]
        return {
            int(c): {"name": name, "AP": ap, "AP50": ap50, "AP75": ap75}
            for c, name, ap, ap50, ap75 in zip(self.category_ids, self.category_names, *columns)
        }

    def _per_category(self, iou: float | None) -> np.ndarray:
        """[K] mean precision over recall (and IoU unless ``iou``), area all, largest maxDets."""
        precision = self.precision[..., 0, -1]  # [T, R, K]
        if iou is not None:
            precision = precision[np.isclose(IOU_THRESHOLDS, iou)]
        per_category = np.moveaxis(precision, 2, 0).reshape(len(self.category_ids), -1)  # [K, T*R]
        valid = per_category > -1
        sums = np.where(valid, per_category, 0.0).sum(axis=1)
        return np.where(valid.any(axis=1), sums / np.maximum(valid.sum(axis=1), 1), np.nan)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: stats, their names, per-category AP (null without GT), protocol, timing."""

        def number(value: Any) -> Any:
            return None if isinstance(value, float) and math.isnan(value) else value

        per_category = {
            str(c): {k: number(v) for k, v in entry.items()}
            for c, entry in self.per_category().items()
        }
        return {
            "stats": self.stats.tolist(),
            "stat_names": list(self.stat_names),
            "per_category": per_category,
            "iou_type": self.iou_type,
            "protocol": self.protocol,
            "timing": dict(self.timing),
        }


def evaluate_coco(
    gt: dict | str | Path | GroundTruth,
    dt: list | str | Path,
    iou_type: str = "bbox",
    protocol: str = "coco",
    keypoint_sigmas: Sequence[float] | None = None,
    processes: int = 1,
) -> CocoResult:
    """Evaluate results ``dt`` (a list of result dicts or a JSON path) against ``gt`` (a dataset
    dict, a JSON path, or a loaded ``GroundTruth``), as pycocotools' ``COCOeval`` (or lvis-api's
    ``LVISEval`` for ``protocol="lvis"``) would with default parameters, or for keypoints other
    than COCO's 17 with ``keypoint_sigmas`` [K] as its ``params.kpt_oks_sigmas``. ``processes``:
    decode a big box results file in this many processes at once, forked from this one (see
    :func:`~visionflow.evaluation.coco_results.load_results`; the command line's choice).

    Bad input raises ``visionflow.errors.DataError`` naming the file and the record; bad sigmas
    a ``SpecError`` naming ``keypoint_sigmas``."""
    started = time.perf_counter()
    check_protocol(protocol)
    if isinstance(gt, GroundTruth) and keypoint_sigmas is not None:
        raise SpecError(
            "keypoint_sigmas: give them to load_ground_truth with the ground truth they describe"
        )
    with decoding(dt, iou_type, processes, gt) as dt:  # a big file's children start now
        ground_truth = (
            gt
            if isinstance(gt, GroundTruth)
            else load_ground_truth(gt, iou_type, protocol, keypoint_sigmas)
        )
        if ground_truth.iou_type != iou_type:
            raise DataError(
                f"the ground truth was loaded for {ground_truth.iou_type!r}, not {iou_type!r}"
            )
        loaded_gt = time.perf_counter()
        results = load_results(dt, ground_truth)
    coco_gt, coco_dt = engine_inputs(ground_truth, results, protocol)
    # hotcoco keeps its own copy: ours would otherwise stay alive through the evaluation (the
    # peak memory)
    del results
    categories, sigmas = ground_truth.category_table(), ground_truth.keypoint_sigmas
    del ground_truth  # likewise the ground truth, when it was read here
    timing = {"load_gt_s": loaded_gt - started, "load_dt_s": time.perf_counter() - loaded_gt}
    return evaluated(categories, coco_gt, coco_dt, protocol, timing, sigmas)


def check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise DataError(
            f"unknown protocol {protocol!r}", hint="use one of: " + ", ".join(PROTOCOLS)
        )


def score(
    gt: GroundTruth,
    results: Results,
    protocol: str = "coco",
    timing: dict[str, float] | None = None,
) -> CocoResult:
    """Checked ground truth and results through hotcoco's ``COCOeval``."""
    return evaluated(
        gt.category_table(),
        *engine_inputs(gt, results, protocol),
        protocol,
        dict(timing or {}),
        gt.keypoint_sigmas,
    )


def evaluated(
    categories: CategoryTable,
    coco_gt: Any,
    coco_dt: Any,
    protocol: str,
    timing: dict[str, float],
    keypoint_sigmas: tuple[float, ...] | None = None,
) -> CocoResult:
    """hotcoco's ``COCOeval`` of its ground truth and results ``COCO``s, evaluated and accumulated;
    custom ``keypoint_sigmas`` (checked) replace COCO's. They redefine OKS, as hotcoco warns once
    per evaluation; the warning is dropped here, since whoever gave them chose them."""
    import hotcoco

    started = time.perf_counter()
    engine = hotcoco.COCOeval(coco_gt, coco_dt, categories.iou_type, lvis_style=protocol == "lvis")
    if keypoint_sigmas is not None:
        params = engine.params
        params.kpt_oks_sigmas = list(keypoint_sigmas)
        engine.params = params
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="hotcoco: kpt_oks_sigmas differ")
        engine.evaluate()
        engine.accumulate()
    return result_of(
        engine, categories, protocol, {**timing, "evaluate_s": time.perf_counter() - started}
    )


def engine_inputs(gt: GroundTruth, results: Results, protocol: str) -> tuple[Any, Any]:
    """hotcoco's ground truth and results ``COCO``s of checked inputs."""
    coco_gt = engine_ground_truth(gt)
    return coco_gt, engine_results(coco_gt, results, protocol)


def engine_ground_truth(gt: GroundTruth) -> Any:
    """hotcoco's ``COCO`` of a checked ground truth (boxes as columns, no dict per annotation)."""
    import hotcoco
    import msgspec

    if gt.records is not None:
        return hotcoco.COCO(
            {
                "images": gt.images,
                "categories": gt.categories,
                "annotations": msgspec.to_builtins(gt.records),
            }
        )
    anns = gt.annotations
    return hotcoco.COCO.from_arrays(
        gt.images,
        gt.categories,
        anns.image_ids,
        anns.category_ids,
        anns.boxes,
        ids=anns.ids,
        area=anns.area,
        iscrowd=anns.iscrowd,
    )


def engine_results(coco_gt: Any, results: Results, protocol: str) -> Any:
    """hotcoco's results ``COCO`` (``loadRes``); LVIS keeps each image's top 300."""
    import hotcoco
    import msgspec

    records = results.columns if results.records is None else msgspec.to_builtins(results.records)
    if protocol == "lvis":
        return hotcoco.LVISResults(coco_gt, records, max_dets=LVIS_MAX_DETS)
    return coco_gt.load_res(records)


def result_of(
    engine: Any, categories: CategoryTable, protocol: str, timing: dict[str, float]
) -> CocoResult:
    """A ``CocoResult`` from an accumulated hotcoco ``COCOeval``."""
    lines = tuple(
        pycocotools_text(line) if protocol == "coco" else line for line in engine.summary_lines()
    )
    params = engine.params
    timing["total_s"] = sum(timing.values())
    return CocoResult(
        categories.iou_type,
        protocol,
        np.asarray(engine.stats, dtype=np.float64),
        tuple(engine.metric_keys()),
        lines,
        categories.ids,
        categories.names,
        tuple(params.area_rng_lbl),
        tuple(params.max_dets),
        engine,
        timing,
    )


def pycocotools_text(line: str) -> str:
    """A summary line as pycocotools prints it (the title padded to 18 characters)."""
    match = re.fullmatch(r"\s*(Average \w+)\s+(\(A[PR]\))\s+(.*)", line)
    return line if match is None else " {:<18} {} {}".format(*match.groups())


class CocoEvaluator:
    """COCO evaluation for a training or test loop: ``reset()``, ``process(...)`` per batch,
    ``evaluate()`` once. The ground truth is read and checked once, when the evaluator is built.

    ``label_to_category`` maps a model's labels to COCO category ids (a mapping, or a sequence
    indexed by label); None means the labels are the category ids. Under ``torch.distributed``,
    ``evaluate()`` gathers every rank's predictions (``all_gather_object``) and every rank scores
    them, so all ranks return the same result. An image whose predictions come from several ranks
    (a ``DistributedSampler`` pads the split with images repeated on later ranks, so that every
    rank gets as many) counts once, with the predictions of the first rank that has it.
    """

    def __init__(
        self,
        gt: dict | str | Path,
        iou_type: str = "bbox",
        label_to_category: Mapping[int, int] | Sequence[int] | None = None,
        protocol: str = "coco",
    ):
        check_protocol(protocol)
        self.iou_type = iou_type
        self.protocol = protocol
        self.ground_truth = load_ground_truth(gt, iou_type, protocol)
        self._log = PredictionLog(label_lookup(label_to_category), iou_type)

    def reset(self) -> None:
        """Forget the predictions processed so far."""
        self._log.clear()

    def process(
        self,
        predictions: Sequence[Mapping[str, Any]],
        targets: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Add one batch: COCO result dicts, or per-image model outputs (``boxes`` [N, 4] XYXY pixels,
        ``scores`` [N], ``labels`` [N]; see ``coco_predictions``) whose ``image_id`` is in the
        prediction or in the target at the same position."""
        self._log.add(predictions, targets)

    def evaluate(self) -> CocoResult:
        """Score everything processed since the last ``reset()`` (on all DDP ranks together)."""
        started = time.perf_counter()
        results = self._log.first_rank_per_image(_gather(self._log.groups))
        checked = load_results(results, self.ground_truth, source="<predictions>")
        return score(
            self.ground_truth, checked, self.protocol, {"load_dt_s": time.perf_counter() - started}
        )


def _gather(groups: list[Any]) -> list[list[Any]]:
    """Every rank's groups, in rank order; this rank's alone without torch.distributed."""
    dist = sys.modules.get(
        "torch.distributed"
    )  # no process group can exist before torch is imported
    if (
        dist is None
        or not (dist.is_available() and dist.is_initialized())
        or dist.get_world_size() == 1
    ):
        return [groups]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, groups)
    return gathered
