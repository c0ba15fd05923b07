"""COCO evaluation, equal to pycocotools' ``COCOeval`` and several times faster.

    result = evaluate_coco("instances_val2017.json", "detections.json", iou_type="bbox")
    print("\\n".join(result.summary_lines()))

    evaluator = CocoEvaluator("instances_val2017.json", iou_type="bbox", label_to_category=ids)
    evaluator.process(model_outputs, targets)   # per batch, on every DDP rank
    result = evaluator.evaluate()               # gathers all ranks' predictions, then scores

How it stays exact and where the time goes: docs/coco_evaluation.md.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from visionflow.metrics.coco_accumulate import Tables, accumulate, per_category_ap, stat_settings, summarize
from visionflow.metrics.coco_data import Detections, GroundTruth, load_detections, load_ground_truth
from visionflow.metrics.coco_match import Matches, image_shards, match, merge_matches
from visionflow.metrics.coco_parallel import available_workers
from visionflow.metrics.coco_params import IOU_THRESHOLDS, CocoParams, params_for
from visionflow.metrics.coco_predictions import image_id_of, is_result_dict, label_lookup, results_from_prediction


@dataclass(frozen=True)
class CocoResult:
    """The outcome of one evaluation; the arrays are pycocotools' ``COCOeval.eval``.

    ``stats`` [12] ([10] for keypoints) in pycocotools' order, named by ``stat_names``;
    ``precision`` and ``scores`` [T=10, R=101, K, A, M], ``recall`` [T, K, A, M], with K the GT
    categories sorted by id (``category_ids``), A the area ranges and M the maxDets of ``params``.
    """

    iou_type: str
    stats: np.ndarray
    category_ids: np.ndarray
    category_names: tuple[str, ...]
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    params: CocoParams
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def stat_names(self) -> tuple[str, ...]:
        return self.params.stat_names

    @property
    def per_category_ap(self) -> dict[int, float]:
        """AP@[.50:.95] (area all, maxDets 100 or 20) per category id; NaN for a category without GT."""
        return dict(zip(self.category_ids.tolist(), per_category_ap(self._tables).tolist()))

    def per_category(self) -> dict[int, dict[str, Any]]:
        """Per category id: its name and AP, AP50, AP75 (NaN without GT)."""
        columns = [per_category_ap(self._tables, iou) for iou in (None, .5, .75)]
        return {int(c): {"name": name, "AP": ap, "AP50": ap50, "AP75": ap75}
                for c, name, ap, ap50, ap75 in zip(self.category_ids, self.category_names,
                                                    *(column.tolist() for column in columns))}

    def summary_lines(self) -> list[str]:
        """pycocotools' summary, one line per stat."""
        line = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}"
        lines = []
        for setting, value in zip(stat_settings(self.params), self.stats):
            title, kind = ("Average Precision", "(AP)") if setting.average_precision else ("Average Recall", "(AR)")
            iou = (f"{IOU_THRESHOLDS[0]:0.2f}:{IOU_THRESHOLDS[-1]:0.2f}" if setting.iou is None
                   else f"{setting.iou:0.2f}")
            lines.append(line.format(title, kind, iou, setting.area, setting.max_dets, value))
        return lines

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: stats, their names, per-category AP (null without GT), iou type, timing."""
        def number(value: float) -> float | None:
            return None if math.isnan(value) else value

        per_category = {str(c): {k: (number(v) if isinstance(v, float) else v) for k, v in entry.items()}
                        for c, entry in self.per_category().items()}
        return {"stats": self.stats.tolist(), "stat_names": list(self.stat_names), "per_category": per_category,
                "iou_type": self.iou_type, "timing": dict(self.timing)}

    @property
    def _tables(self) -> Tables:
        return Tables(self.precision, self.recall, self.scores)


def evaluate_coco(gt: dict | str | Path | GroundTruth, dt: list | str | Path, iou_type: str = "bbox",
                  workers: int | None = None) -> CocoResult:
    """Evaluate detections ``dt`` (results list or JSON path) against ``gt`` (dataset dict, JSON path,
    or a loaded ``GroundTruth``), as pycocotools' ``COCOeval`` with default parameters would.

    ``workers``: threads for matching and accumulation (default: every core this process may use).
    Bad input raises ``visionflow.errors.DataError`` naming the file and the record.
    """
    started = time.perf_counter()
    ground_truth = gt if isinstance(gt, GroundTruth) else load_ground_truth(gt, iou_type)
    if ground_truth.iou_type != iou_type:
        raise ValueError(f"the ground truth was loaded for {ground_truth.iou_type!r}, not {iou_type!r}")
    return _evaluate(ground_truth, dt, _workers(workers), started)


def evaluate_coco_in_shards(gt: dict | str | Path | GroundTruth, dt: list | str | Path,
                            iou_type: str = "bbox", shards: int = 2,
                            run_shards: ShardRunner | None = None,
                            workers: int | None = None) -> CocoResult:
    """:func:`evaluate_coco` with the per-image matching split into ``shards`` consecutive image
    ranges, run by ``run_shards(gt, detections, params, ranges) -> [Matches]`` (default: one
    after another in this process; ``visionflow.cluster`` runs them as Ray tasks), joined in
    image order, then accumulated once: the same result as :func:`evaluate_coco`."""
    started = time.perf_counter()
    ground_truth = gt if isinstance(gt, GroundTruth) else load_ground_truth(gt, iou_type)
    runner = run_shards or _match_here(_workers(workers))

    def sharded_match(gt: GroundTruth, detections: Detections, params: CocoParams, _: int) -> Matches:
        return merge_matches(runner(gt, detections, params, image_shards(gt, detections, shards)))

    return _evaluate(ground_truth, dt, _workers(workers), started, matcher=sharded_match)


#: ``run_shards(gt, detections, params, image_ranges) -> [Matches]``, one per range, in order
ShardRunner = Callable[[GroundTruth, Detections, CocoParams, list[range]], list[Matches]]


def _match_here(workers: int) -> ShardRunner:
    def run_shards(gt: GroundTruth, detections: Detections, params: CocoParams,
                   ranges: list[range]) -> list[Matches]:
        return [match(gt, detections, params, workers, images) for images in ranges]
    return run_shards


def _evaluate(gt: GroundTruth, dt: list | str | Path, workers: int, started: float,
              dt_source: str | None = None, matcher: Callable[..., Matches] = match) -> CocoResult:
    """Load the detections and score them; ``timing`` records each step in seconds."""
    loaded_gt = time.perf_counter()
    detections = load_detections(dt, gt, dt_source)
    loaded_dt = time.perf_counter()
    params = params_for(gt.iou_type)
    matches = matcher(gt, detections, params, workers)
    matched = time.perf_counter()
    tables = accumulate(matches, params, len(gt.category_ids), workers)
    done = time.perf_counter()
    timing = {"load_gt_s": loaded_gt - started, "load_dt_s": loaded_dt - loaded_gt, "match_s": matched - loaded_dt,
              "accumulate_s": done - matched, "total_s": done - started}
    return CocoResult(gt.iou_type, summarize(tables, params), gt.category_ids, gt.category_names,
                      tables.precision, tables.recall, tables.scores, params, timing)


def _workers(workers: int | None) -> int:
    if workers is None:
        return available_workers()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return workers


class CocoEvaluator:
    """COCO evaluation for a training or test loop: ``reset()``, ``process(...)`` per batch,
    ``evaluate()`` once. The ground truth is read once, when the evaluator is built.

    ``label_to_category`` maps a model's labels to COCO category ids (a mapping, or a sequence
    indexed by label); None means the labels are the category ids. Under ``torch.distributed``,
    ``evaluate()`` gathers every rank's predictions (``all_gather_object``) and every rank scores
    them, so all ranks return the same result.
    """

    def __init__(self, gt: dict | str | Path, iou_type: str = "bbox", workers: int | None = None,
                 label_to_category: Mapping[int, int] | Sequence[int] | None = None):
        self.iou_type = iou_type
        self.workers = None if workers is None else _workers(workers)
        self.ground_truth = load_ground_truth(gt, iou_type)
        self._label_to_category = label_lookup(label_to_category)
        self._results: list[dict] = []
        self._batches = 0

    def reset(self) -> None:
        """Forget the predictions processed so far."""
        self._results = []
        self._batches = 0

    def process(self, predictions: Sequence[Mapping[str, Any]],
                targets: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Add one batch: COCO result dicts, or per-image model outputs (``boxes`` [N, 4] XYXY pixels,
        ``scores`` [N], ``labels`` [N]; see ``coco_predictions``) whose ``image_id`` is in the
        prediction or in the target at the same position."""
        self._batches += 1
        for index, prediction in enumerate(predictions):
            if is_result_dict(prediction):
                self._results.append(prediction)
                continue
            where = f"<predictions>: batch #{self._batches - 1}, prediction #{index}"
            target = targets[index] if targets is not None else None
            image_id = image_id_of(prediction, target, where)
            self._results.extend(results_from_prediction(prediction, image_id, self._label_to_category,
                                                         self.iou_type, f"{where} (image_id {image_id})"))

    def evaluate(self) -> CocoResult:
        """Score everything processed since the last ``reset()`` (on all DDP ranks together)."""
        results, world_size = _gather(self._results)
        workers = self.workers or max(1, available_workers() // world_size)
        return _evaluate(self.ground_truth, results, workers, time.perf_counter(), dt_source="<predictions>")


def _gather(results: list[dict]) -> tuple[list[dict], int]:
    """(all ranks' results in rank order, world size); this rank's alone without torch.distributed."""
    dist = sys.modules.get("torch.distributed")  # no process group can exist before torch is imported
    if dist is None or not (dist.is_available() and dist.is_initialized()):
        return results, 1
    gathered: list[list[dict] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, results)
    return [result for part in gathered for result in part], len(gathered)
