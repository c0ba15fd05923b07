"""``visionflow eval coco``: evaluate a COCO results file against its ground truth.

    visionflow eval coco --gt instances_val2017.json --dt detections.json --iou-type bbox \\
        [--workers N] [--json OUT.json] [--per-category] [--plots DIR] [--shards N]

Prints pycocotools' 12-line summary (10 for keypoints). Bad input raises
``visionflow.errors.DataError``, which the CLI turns into one line and exit code 2.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from typing import TYPE_CHECKING

from visionflow.metrics.coco_params import IOU_TYPES

if TYPE_CHECKING:  # the evaluator (numba) loads in run(), not when the CLI builds its parser
    from visionflow.metrics.coco import CocoResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, type=Path, metavar="GT.json", help="COCO ground truth file")
    parser.add_argument("--dt", required=True, type=Path, metavar="DT.json", help="COCO results file")
    parser.add_argument("--iou-type", choices=IOU_TYPES, default="bbox", help="what to evaluate (default: bbox)")
    parser.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                        help="threads for matching and accumulation (default: all cores)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                        help="also write stats, per-category AP and timing to this file")
    parser.add_argument("--per-category", action="store_true", help="print AP, AP50 and AP75 per category")
    parser.add_argument("--plots", type=Path, default=None, metavar="DIR", help="write PR-curve PNGs here")
    parser.add_argument("--shards", type=_positive_int, default=None, metavar="N",
                        help="match images in N Ray tasks (an embedded local Ray, or the cluster "
                             "this process is connected to), then accumulate once; same result")


def run(args: argparse.Namespace) -> int:
    import orjson

    from visionflow.metrics.coco import evaluate_coco
    from visionflow.rundir import atomic_write_bytes

    if args.shards is not None:
        from visionflow.cluster.coco_shards import evaluate_coco_on_ray

        result = evaluate_coco_on_ray(args.gt, args.dt, args.iou_type, args.shards, args.workers)
    else:
        result = evaluate_coco(args.gt, args.dt, args.iou_type, args.workers)
    print("\n".join(result.summary_lines()))
    if args.per_category:
        print("\n".join(per_category_table(result)))
    if args.json is not None:
        atomic_write_bytes(args.json, orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2))
        print(f"wrote {args.json}")
    if args.plots is not None:
        for path in _plot(result, args.plots):
            print(f"wrote {path}")
    print(f"evaluated in {result.timing['total_s']:.2f} s")
    return 0


def per_category_table(result: CocoResult) -> list[str]:
    """One row per category: id, name, AP, AP50, AP75 ('-' for a category without GT)."""
    def cell(value: float) -> str:
        return f"{value:7.3f}" if not math.isnan(value) else f"{'-':>7}"

    entries = result.per_category()
    width = max([len("category")] + [len(entry["name"]) for entry in entries.values()])
    rows = [f"{'id':>5}  {'category':<{width}} {'AP':>7} {'AP50':>7} {'AP75':>7}"]
    for category_id, entry in entries.items():
        rows.append(f"{category_id:>5}  {entry['name']:<{width}} "
                    + " ".join(cell(entry[key]) for key in ("AP", "AP50", "AP75")))
    return rows


def _plot(result: CocoResult, folder: Path) -> list[Path]:
    from visionflow.metrics.coco_plots import plot_pr_curves  # matplotlib loads only when asked

    return plot_pr_curves(result, folder)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
