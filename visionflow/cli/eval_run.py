"""``visionflow eval run``: score a trained model on a dataset, in shards, as a one-stage run.

    visionflow eval run runs/shapes_ssdlite/20261123-101500/checkpoints/last.ckpt --shards 4
    visionflow eval run examples/shapes_detection.yaml --checkpoint best.ckpt --data coco_val.yaml

The source is a pipeline spec, or a checkpoint inside a run directory (whose
``spec.resolved.yaml`` is used). The spec's stages become one ``evaluate`` stage (split, shards,
checkpoint); ``--data`` swaps in another data section; ``--set`` overrides any key. The result is
an ordinary run directory named ``<name>_eval`` with ``evaluation_<split>.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from visionflow.errors import SpecError
from visionflow.overrides import add_set_argument

if TYPE_CHECKING:  # the spec module imports torch; `visionflow eval coco --help` must not
    from visionflow.spec import PipelineSpec

EXAMPLES = """\
examples:
  visionflow eval run runs/digits_lenet5/20261123-101500/checkpoints/last.ckpt
  visionflow eval run runs/shapes_ssdlite/20261123-101500/checkpoints/last.ckpt --shards 4
  visionflow eval run examples/coco_evaluate.yaml --checkpoint best.ckpt --data val_data.yaml \\
      --backend ray --set resources.num_workers=4
"""
RUN_SPEC = "spec.resolved.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="SPEC|CHECKPOINT",
        help=f"a pipeline spec, or a .ckpt inside a run directory (its {RUN_SPEC} is used)",
    )
    parser.add_argument("--checkpoint", metavar="CKPT", help="weights to score (with a SPEC)")
    parser.add_argument(
        "--data",
        metavar="DATA.yaml",
        help="a YAML file holding a data section "
        "({name: ..., args: {...}}) to evaluate on instead of the spec's",
    )
    parser.add_argument(
        "--split",
        choices=["test", "val"],
        default="test",
        help="the split to score (default: test)",
    )
    parser.add_argument(
        "--shards",
        type=int,
        metavar="N",
        help="shards of whole batches (default: 1, or resources.num_workers with the ray backend)",
    )
    parser.add_argument(
        "--backend",
        choices=["local", "ray"],
        help="override resources.backend (ray: one Ray task per shard)",
    )
    add_set_argument(parser)


def evaluation_spec(args: argparse.Namespace) -> PipelineSpec:
    """The one-stage spec that ``args`` describe, validated."""
    from visionflow.overrides import apply_overrides
    from visionflow.spec import parse_spec, read_spec_file

    spec_path, checkpoint = _spec_and_checkpoint(Path(args.source), args.checkpoint)
    raw = read_spec_file(spec_path)
    raw.pop("sweep", None)
    if args.data:
        raw["data"] = read_spec_file(args.data)
    raw["name"] = f"{raw.get('name', 'pipeline')}_eval"
    stage = {
        "split": args.split,
        "checkpoint": checkpoint,
        **({"shards": args.shards} if args.shards is not None else {}),
    }
    raw["stages"] = [{"evaluate": stage}]
    overrides = [*args.overrides, *([f"resources.backend={args.backend}"] if args.backend else [])]
    return parse_spec(apply_overrides(raw, overrides), source=str(spec_path))


def _spec_and_checkpoint(source: Path, checkpoint: str | None) -> tuple[Path, str | None]:
    """(the spec file, the checkpoint to load or None) for a spec or a checkpoint source."""
    if source.suffix != ".ckpt":
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise SpecError(f"--checkpoint: {checkpoint}: no such file")
        return source, checkpoint
    if checkpoint is not None:
        raise SpecError(
            "--checkpoint: the source is already a checkpoint",
            hint="give a SPEC with --checkpoint, or the checkpoint alone",
        )
    if not source.is_file():
        raise SpecError(f"{source}: no such checkpoint")
    for folder in source.resolve().parents[:3]:
        if (folder / RUN_SPEC).is_file():
            return folder / RUN_SPEC, str(source.resolve())
    raise SpecError(
        f"{source}: no {RUN_SPEC} in the run directory around this checkpoint",
        hint=f"give the spec it was trained with: visionflow eval run SPEC --checkpoint {source}",
    )


def evaluate_command(args) -> int:
    """``visionflow eval run``: a one-stage evaluation run, here or on Ray."""
    from visionflow.cli.run import backend_module, joined_cluster, report_results

    spec = evaluation_spec(args)
    with joined_cluster(args.address, spec.resources.backend):
        return report_results(backend_module(spec.resources.backend).run(spec))
