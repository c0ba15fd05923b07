"""The ``visionflow eval coco | panoptic | semantic`` subcommands: their arguments and handlers.

The CLI (``visionflow.cli``) adds them with :func:`add_eval_kinds` and dispatches with
:func:`run`. Only argparse is imported until a command runs; the sharded ``eval coco`` reaches the
cluster layer only then, from here (the evaluation layer imports no Ray).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from visionflow.argtypes import int_in
from visionflow.cli import add_command
from visionflow.evaluation import coco_command

EVAL_KINDS = ("coco", "panoptic", "semantic")
#: the most classes ``eval semantic`` takes: its K x K int64 confusion matrix is then 128 MiB
#: (ADE20K-Full, the largest common label set, has 3688 classes)
MAX_SEMANTIC_CLASSES = 4096
COCO_EXAMPLES = """\
examples:
  visionflow eval coco --gt instances_val.json --dt detections.json --iou-type bbox --json out.json
  visionflow eval coco --gt lvis_v1_val.json --dt detections.json --iou-type segm --protocol lvis
  visionflow eval coco --gt instances_val.json --dt detections.json --shards 8 --address ray://head:10001
  visionflow eval coco --gt hands.json --dt keypoints.json --iou-type keypoints --keypoint-sigmas 0.05 0.05 0.03
"""
PANOPTIC_EXAMPLES = """\
examples:
  visionflow eval panoptic --gt-json panoptic_val2017.json --gt-folder panoptic_val2017 \\
      --pred-json predictions.json --pred-folder predictions --json pq.json
"""
SEMANTIC_EXAMPLES = """\
examples:
  visionflow eval semantic --gt-folder ADEChallengeData2016/annotations/validation \\
      --pred-folder predictions --num-classes 150 --json miou.json
"""


def add_eval_kinds(kinds, formatter: type[argparse.HelpFormatter], only: str | None = None) -> None:
    """Add ``coco``, ``panoptic`` and ``semantic`` (or only the kind ``only``) to the ``eval``
    subparsers ``kinds``."""
    for kind, (summary, examples, add_arguments) in _KIND_PARSERS.items():
        if only in (None, kind):
            add_arguments(add_command(kinds, kind, summary, examples, formatter))


def _add_panoptic_arguments(panoptic: argparse.ArgumentParser) -> None:
    for side in ("gt", "pred"):
        panoptic.add_argument(f"--{side}-json", required=True, type=Path, metavar="F.json")
        panoptic.add_argument(
            f"--{side}-folder", required=True, type=Path, metavar="DIR", help="its PNGs"
        )
    panoptic.add_argument(
        "--json", type=Path, metavar="OUT.json", help="also write the results here"
    )


def _add_semantic_arguments(semantic: argparse.ArgumentParser) -> None:
    semantic.add_argument(
        "--gt-folder", required=True, type=Path, metavar="DIR", help="ground-truth label PNGs"
    )
    semantic.add_argument(
        "--pred-folder",
        required=True,
        type=Path,
        metavar="DIR",
        help="predicted label PNGs, named like the ground truth's",
    )
    semantic.add_argument(
        "--num-classes", required=True, type=int_in(1, MAX_SEMANTIC_CLASSES), metavar="K"
    )
    semantic.add_argument(
        "--ignore-index", type=int, default=255, help="label skipped in the masks (255)"
    )
    semantic.add_argument(
        "--json", type=Path, metavar="OUT.json", help="also write the metrics here"
    )


_KIND_PARSERS = {  # kind: (help, examples, adds its arguments)
    "coco": (
        "COCO/LVIS bbox, segm, keypoints evaluation, exact to pycocotools (hotcoco engine)",
        COCO_EXAMPLES,
        coco_command.add_arguments,
    ),
    "panoptic": (
        "panoptic quality (PQ/SQ/RQ), as panopticapi's pq_compute",
        PANOPTIC_EXAMPLES,
        _add_panoptic_arguments,
    ),
    "semantic": (
        "semantic segmentation mIoU, per-class IoU and accuracies from label PNGs",
        SEMANTIC_EXAMPLES,
        _add_semantic_arguments,
    ),
}


def run(args: argparse.Namespace) -> int:
    """Run the ``eval`` kind that ``args`` name (not ``eval run``)."""
    return {"coco": _coco, "panoptic": _panoptic, "semantic": _semantic}[args.eval_kind](args)


def _coco(args: argparse.Namespace) -> int:
    from visionflow.errors import SpecError

    sigmas = coco_command.keypoint_sigmas(args)
    if args.shards is None:
        if args.address is not None:
            raise SpecError(
                "--address: only with --shards", hint="add --shards N to evaluate on that cluster"
            )
        from visionflow.evaluation.coco import evaluate_coco
        from visionflow.evaluation.forked import usable_cores

        result = evaluate_coco(
            args.gt, args.dt, args.iou_type, args.protocol, sigmas, min(usable_cores(), 8)
        )
        return coco_command.report(result, args)
    if args.protocol != "coco":
        raise SpecError(
            "--shards: only with --protocol coco",
            hint="LVIS keeps each image's top 300 detections before matching; run it in one process",
        )
    from visionflow.cli.run import joined_cluster
    from visionflow.cluster.coco_shards import evaluate_coco_on_ray

    with joined_cluster(args.address, "ray"):
        return coco_command.report(
            evaluate_coco_on_ray(args.gt, args.dt, args.iou_type, args.shards, sigmas), args
        )


def _panoptic(args: argparse.Namespace) -> int:
    from visionflow.evaluation.panoptic import evaluate_panoptic

    result = evaluate_panoptic(args.gt_json, args.gt_folder, args.pred_json, args.pred_folder)
    print("\n".join(result.lines))
    if args.json is not None:
        print(f"wrote {coco_command.write_json(args.json, result.as_dict())}")
    return 0


def _semantic(args: argparse.Namespace) -> int:
    from visionflow.evaluation.semantic import evaluate_label_folders

    evaluation = evaluate_label_folders(
        args.gt_folder, args.pred_folder, args.num_classes, args.ignore_index
    )
    for name, value in evaluation.metrics.items():
        print(f"{name:<12} {value:.4f}")
    print(f"{evaluation.num_samples} label maps")
    if args.json is not None:
        metrics = {k: (None if v != v else v) for k, v in evaluation.metrics.items()}
        print(f"wrote {coco_command.write_json(args.json, metrics)}")
    return 0
