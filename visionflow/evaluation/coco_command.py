"""``visionflow eval coco``: evaluate a COCO (or LVIS) results file against its ground truth.

    visionflow eval coco --gt instances_val2017.json --dt detections.json --iou-type bbox \\
        [--protocol lvis] [--json OUT.json] [--per-category] [--plots DIR] [--shards N [--address A]]
    visionflow eval coco --gt GT.json --dt DT.json --iou-type keypoints --keypoint-sigmas S1 ... SK

Prints pycocotools' 12-line summary (10 for keypoints; lvis-api's for LVIS). Bad input raises
``visionflow.errors.DataError``, which the CLI turns into one line and exit code 2. Only argparse
is imported until the command runs.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from visionflow.argtypes import int_in

if TYPE_CHECKING:
    from visionflow.evaluation.coco import CocoResult

IOU_TYPES = ("bbox", "segm", "keypoints")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gt", required=True, type=Path, metavar="GT.json", help="COCO ground truth file"
    )
    parser.add_argument(
        "--dt", required=True, type=Path, metavar="DT.json", help="COCO results file"
    )
    parser.add_argument(
        "--iou-type", choices=IOU_TYPES, default="bbox", help="what to evaluate (default: bbox)"
    )
    parser.add_argument(
        "--keypoint-sigmas",
        nargs="+",
        metavar="S",
        help="with --iou-type keypoints: OKS sigmas, one per keypoint, for keypoints other than "
        "COCO's 17 person keypoints (default: COCO's)",
    )
    parser.add_argument(
        "--protocol",
        choices=("coco", "lvis"),
        default="coco",
        help="coco (pycocotools' COCOeval) or lvis (lvis-api's federated LVISEval)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="OUT.json",
        help="also write stats, per-category AP and timing to this file",
    )
    parser.add_argument(
        "--per-category", action="store_true", help="print AP, AP50 and AP75 per category"
    )
    parser.add_argument(
        "--plots",
        type=Path,
        default=None,
        metavar="DIR",
        help="write precision-recall, confusion-matrix and TIDE PNGs here",
    )
    parser.add_argument(
        "--shards",
        type=int_in(1),
        default=None,
        metavar="N",
        help="match the images in N Ray tasks (an embedded local Ray, or the cluster "
        "at --address), then accumulate once; the same result",
    )
    parser.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="with --shards: a running Ray cluster (GCS address or ray://HOST:PORT)",
    )


def keypoint_sigmas(args: argparse.Namespace) -> tuple[float, ...] | None:
    """The checked ``--keypoint-sigmas`` [K] (None when not given); a SpecError naming the
    option where they are not finite positive numbers or the iou type is not keypoints."""
    if args.keypoint_sigmas is None:
        return None
    from visionflow.errors import SpecError
    from visionflow.evaluation.coco_checks import checked_sigmas

    if args.iou_type != "keypoints":
        raise SpecError(
            f"--keypoint-sigmas: only with --iou-type keypoints, not {args.iou_type}",
            hint="add --iou-type keypoints, or leave out --keypoint-sigmas",
        )
    return checked_sigmas(args.keypoint_sigmas, "--keypoint-sigmas")


def report(result: CocoResult, args: argparse.Namespace) -> int:
    """Print the summary (and the per-category table), write --json and --plots; exit code 0."""
    print("\n".join(result.summary_lines()))
    if args.per_category:
        print("\n".join(per_category_table(result)))
    if args.json is not None:
        print(f"wrote {write_json(args.json, result.as_dict())}")
    if args.plots is not None:
        from visionflow.errors import writing_to
        from visionflow.evaluation.coco_plots import (
            plot_evaluation,  # matplotlib loads only when asked
        )

        with writing_to("--plots", args.plots):
            paths = plot_evaluation(result, args.plots)
        for path in paths:
            print(f"wrote {path}")
    print(f"evaluated in {result.timing['total_s']:.2f} s")
    return 0


def write_json(path: Path, data: dict) -> Path:
    """``data`` as indented JSON at ``path`` (its folder made if needed): ``--json``'s file."""
    import orjson

    from visionflow.errors import writing_to

    with writing_to("--json", path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
    return path


def per_category_table(result: CocoResult) -> list[str]:
    """One row per category: id, name, AP, AP50, AP75 ('-' for a category without GT)."""

    def cell(value: float) -> str:
        return f"{value:7.3f}" if not math.isnan(value) else f"{'-':>7}"

    entries = result.per_category()
    width = max([len("category")] + [len(entry["name"]) for entry in entries.values()])
    rows = [f"{'id':>5}  {'category':<{width}} {'AP':>7} {'AP50':>7} {'AP75':>7}"]
    for category_id, entry in entries.items():
        rows.append(
            f"{category_id:>5}  {entry['name']:<{width}} "
            + " ".join(cell(entry[key]) for key in ("AP", "AP50", "AP75"))
        )
    return rows
