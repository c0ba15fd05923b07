"""Evaluation metrics. COCO detection, segmentation and keypoint evaluation: ``visionflow.metrics.coco``.

The names below load on first use, so the CLI can import ``coco_command`` for its arguments
without paying for numba and the evaluator.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CocoEvaluator", "CocoResult", "evaluate_coco"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from visionflow.metrics import coco

        return getattr(coco, name)
    raise AttributeError(f"module 'visionflow.metrics' has no attribute {name!r}")
