"""The reference implementations, run the way their users run them, for the tests and the benchmark.

pycocotools and faster-coco-eval print progress and modify the records they are given, so both
run silenced on deep copies.
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ReferenceResult:
    """``COCOeval.stats`` and ``COCOeval.eval``'s precision, recall and scores arrays."""

    stats: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray


def pycocotools_evaluate(
    gt: dict | str | Path, dt: list | str | Path, iou_type: str
) -> ReferenceResult:
    """``COCO(gt)``, ``loadRes(dt)``, ``COCOeval(...).evaluate(); accumulate(); summarize()``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return _run(COCO, COCOeval, gt, dt, iou_type)


def faster_coco_eval_evaluate(
    gt: dict | str | Path, dt: list | str | Path, iou_type: str
) -> ReferenceResult:
    """The same through faster-coco-eval's ``COCO`` and ``COCOeval_faster``."""
    from faster_coco_eval import COCO, COCOeval_faster

    return _run(COCO, COCOeval_faster, gt, dt, iou_type)


def _run(coco_class, eval_class, gt, dt, iou_type: str) -> ReferenceResult:
    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(gt, dict):
            coco_gt = coco_class()
            coco_gt.dataset = copy.deepcopy(gt)
            coco_gt.createIndex()
        else:
            coco_gt = coco_class(str(gt))
        coco_dt = coco_gt.loadRes(copy.deepcopy(dt) if isinstance(dt, list) else str(dt))
        evaluator = eval_class(coco_gt, coco_dt, iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return ReferenceResult(
        np.asarray(evaluator.stats),
        evaluator.eval["precision"],
        evaluator.eval["recall"],
        evaluator.eval["scores"],
    )
