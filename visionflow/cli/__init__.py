"""The ``visionflow`` command: run pipelines, list what is registered, evaluate results.

The whole command line lives in this package, the top layer: one module per command group
(``run``, ``listing``, ``eval`` and ``eval_run``, ``data``, ``cluster``), each dispatching to the
layer below that does the work.

Bad input prints one line and a hint and exits with 2; ``--debug`` shows the traceback.
Heavy modules (torch, lightning, ray) are imported only by the subcommand that needs them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from visionflow import __version__
from visionflow.cli import eval_run
from visionflow.cli.cluster import add_cluster_commands
from visionflow.cli.data import add_data_commands, data_command
from visionflow.cli.eval import add_eval_kinds
from visionflow.cli.eval import run as eval_kind_command
from visionflow.cli.eval_run import evaluate_command
from visionflow.cli.listing import list_command
from visionflow.cli.run import run_command
from visionflow.errors import VisionFlowError
from visionflow.overrides import add_set_argument

RUN_EXAMPLES = """\
examples:
  visionflow run examples/digits_classification.yaml
  visionflow run examples/digits_classification.yaml --backend local --set trainer.max_epochs=3
  visionflow run examples/digits_classification.yaml --seeds 3
  visionflow run --resume runs/digits_lenet5/20261123-101500
  visionflow run examples/digits_classification.yaml --address 127.0.0.1:6379   # a running head
  visionflow submit examples/digits_classification.yaml --address http://127.0.0.1:8265 --wait
"""
LIST_EXAMPLES = """\
examples:
  visionflow list              every registry
  visionflow list tasks        only the tasks
"""
EVAL_EXAMPLES = """\
examples:
  visionflow eval run runs/digits_lenet5/20261123-101500/checkpoints/last.ckpt --shards 4
  visionflow eval coco --gt instances_val.json --dt detections.json --iou-type bbox --json out.json
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visionflow",
        description="Train and evaluate computer-vision models, "
        "locally or on Ray, from one YAML pipeline spec.",
    )
    parser.add_argument("--version", action="version", version=f"visionflow {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(commands)
    listing = commands.add_parser(
        "list",
        help="list registered tasks, datamodules, nets, ...",
        epilog=LIST_EXAMPLES,
        formatter_class=_Formatter,
    )
    listing.add_argument(
        "kind",
        nargs="?",
        choices=["tasks", "datamodules", "nets", "transforms", "stages"],
        help="one registry (default: all)",
    )
    _add_eval(commands)
    add_data_commands(commands, _Formatter)
    add_cluster_commands(commands)
    return parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _add_run(commands) -> None:
    run = commands.add_parser(
        "run",
        help="run a pipeline spec",
        epilog=RUN_EXAMPLES,
        formatter_class=_Formatter,
        description="Run the stages of a pipeline spec into a new run "
        "directory (runs/<name>/<timestamp>/).",
    )
    run.add_argument("spec", nargs="?", help="pipeline YAML")
    add_set_argument(run, ", e.g. --set data.args.batch_size=32")
    run.add_argument(
        "--backend",
        choices=["local", "ray"],
        help="override resources.backend (local: in this process, no Ray)",
    )
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    run.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="run N seeds (seed, seed+1, ...) and write seeds_summary.json",
    )
    add_address_argument(run)


def add_address_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="join this running Ray cluster (a head's GCS address, or "
        "ray://HOST:PORT) instead of starting an embedded Ray",
    )


def _add_eval(commands) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="score a trained model (in shards, on Ray); "
        "COCO/LVIS, panoptic, semantic results files",
        epilog=EVAL_EXAMPLES,
        formatter_class=_Formatter,
    )
    kinds = evaluate.add_subparsers(dest="eval_kind", metavar="KIND", required=True)
    model = kinds.add_parser(
        "run",
        help="score a checkpoint on a dataset split, in shards",
        epilog=eval_run.EXAMPLES,
        formatter_class=_Formatter,
        description="Score a trained model on a dataset split, in shards "
        "(on Ray workers with the ray backend), as a one-stage "
        "run; its run directory holds evaluation_<split>.json.",
    )
    eval_run.add_arguments(model)
    add_address_argument(model)
    add_eval_kinds(kinds, _Formatter)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "run":
            return run_command(args, parser)
        if args.command == "list":
            return list_command(args.kind)
        if args.command == "data":
            return data_command(args)
        if hasattr(args, "cluster_command"):  # cluster, submit, jobs
            return args.cluster_command(args)
        if args.eval_kind == "run":
            return evaluate_command(args)
        return eval_kind_command(args)
    except VisionFlowError as error:
        if args.debug:
            raise
        print(f"visionflow: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("visionflow: interrupted", file=sys.stderr)
        return 130
