"""The ``visionflow`` command: run pipelines, list what is registered, evaluate results.

Bad input prints one line and a hint and exits with 2; ``--debug`` shows the traceback.
Heavy modules (torch, lightning, ray) are imported only by the subcommand that needs them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import textwrap
from collections.abc import Sequence

from visionflow import __version__
from visionflow.errors import VisionFlowError

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
DATA_EXAMPLES = """\
examples:
  visionflow data make-shapes data/shapes --images 200 --image-size 128 --seed 0
"""
EVAL_EXAMPLES = """\
examples:
  visionflow eval run runs/digits_lenet5/20261123-101500/checkpoints/last.ckpt --shards 4
  visionflow eval coco --gt instances_val.json --dt detections.json --iou-type bbox --json out.json
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visionflow", description="Train and evaluate computer-vision models, "
        "locally or on Ray, from one YAML pipeline spec.")
    parser.add_argument("--version", action="version", version=f"visionflow {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(commands)
    listing = commands.add_parser("list", help="list registered tasks, datamodules, nets, ...",
                                  epilog=LIST_EXAMPLES, formatter_class=_Formatter)
    listing.add_argument("kind", nargs="?", choices=["tasks", "datamodules", "nets", "transforms",
                                                     "stages"], help="one registry (default: all)")
    _add_eval(commands)
    _add_data(commands)
    from visionflow.cluster.commands import add_cluster_commands  # argparse only; no ray

    add_cluster_commands(commands)
    return parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _add_run(commands) -> None:
    run = commands.add_parser("run", help="run a pipeline spec", epilog=RUN_EXAMPLES,
                              formatter_class=_Formatter,
                              description="Run the stages of a pipeline spec into a new run "
                                          "directory (runs/<name>/<timestamp>/).")
    run.add_argument("spec", nargs="?", help="pipeline YAML")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a spec key, e.g. --set data.args.batch_size=32 (repeatable)")
    run.add_argument("--backend", choices=["local", "ray"],
                     help="override resources.backend (local: in this process, no Ray)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    run.add_argument("--seeds", type=int, metavar="N",
                     help="run N seeds (seed, seed+1, ...) and write seeds_summary.json")
    add_address_argument(run)


def add_address_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", metavar="HOST:PORT",
                        help="join this running Ray cluster (a head's GCS address, or "
                             "ray://HOST:PORT) instead of starting an embedded Ray")


def _add_eval(commands) -> None:
    evaluate = commands.add_parser("eval", help="score a trained model (in shards, on Ray); "
                                                "COCO mAP of a results file",
                                   epilog=EVAL_EXAMPLES, formatter_class=_Formatter)
    kinds = evaluate.add_subparsers(dest="eval_kind", metavar="KIND", required=True)
    from visionflow import eval_command

    model = kinds.add_parser("run", help="score a checkpoint on a dataset split, in shards",
                             epilog=eval_command.EXAMPLES, formatter_class=_Formatter,
                             description="Score a trained model on a dataset split, in shards "
                                         "(on Ray workers with the ray backend), as a one-stage "
                                         "run; its run directory holds evaluation_<split>.json.")
    eval_command.add_arguments(model)
    add_address_argument(model)
    coco = kinds.add_parser("coco", help="COCO bbox/segm/keypoints evaluation, exact to "
                                         "pycocotools", epilog=EVAL_EXAMPLES,
                            formatter_class=_Formatter)
    from visionflow.metrics import coco_command

    coco_command.add_arguments(coco)


def _add_data(commands) -> None:
    data = commands.add_parser("data", help="make or convert datasets", epilog=DATA_EXAMPLES,
                               formatter_class=_Formatter)
    actions = data.add_subparsers(dest="data_action", metavar="ACTION", required=True)
    shapes = actions.add_parser("make-shapes", epilog=DATA_EXAMPLES, formatter_class=_Formatter,
                                help="write a seeded COCO dataset of circles, squares and "
                                     "triangles (PNGs + instances JSON with boxes and masks)")
    shapes.add_argument("out_dir", metavar="OUT_DIR")
    shapes.add_argument("--images", type=int, required=True, metavar="N")
    shapes.add_argument("--image-size", type=int, default=128, metavar="PX")
    shapes.add_argument("--seed", type=int, default=0)
    from visionflow import flow_command

    flow_command.add_arguments(actions.add_parser(
        "precompute-flow", help="cache the optical flow of every video under a folder",
        epilog=f"example:\n  {flow_command.EXAMPLE}", formatter_class=_Formatter))


def _make_shapes(args: argparse.Namespace) -> int:
    from visionflow.datamodules import make_shapes_dataset

    path = make_shapes_dataset(args.out_dir, args.images, seed=args.seed,
                               image_size=args.image_size)
    print(f"wrote {args.images} images and {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "run":
            return _run(args, parser)
        if args.command == "list":
            return _list(args.kind)
        if args.command == "data" and args.data_action == "precompute-flow":
            from visionflow import flow_command

            return flow_command.run(args)
        if args.command == "data":
            return _make_shapes(args)
        if hasattr(args, "cluster_command"):  # cluster, submit, jobs
            return args.cluster_command(args)
        if args.eval_kind == "run":
            from visionflow.eval_command import evaluation_spec

            spec = evaluation_spec(args)
            with joined_cluster(args.address, spec.resources.backend):
                return _report(_backend_module(spec.resources.backend).run(spec))
        from visionflow.metrics import coco_command

        return coco_command.run(args)
    except VisionFlowError as error:
        if args.debug:
            raise
        print(f"visionflow: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("visionflow: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from visionflow.errors import SpecError

    if args.resume:
        if args.spec or args.overrides or args.seeds:
            raise SpecError("--resume takes the run directory alone",
                            hint="the run's spec.resolved.yaml is reused as it is")
        backend = _resumed_backend(args.resume)
        with joined_cluster(args.address, backend):
            results = _backend_module(backend).resume(args.resume)
        return _report_sweep(results) if hasattr(results, "best") else _report(results)
    if not args.spec:
        parser.parse_args(["run", "--help"])
    from visionflow.spec import load_spec

    overrides = list(args.overrides)
    if args.backend:
        overrides.append(f"resources.backend={args.backend}")
    spec = load_spec(args.spec, overrides)
    if spec.sweep is not None:
        if args.seeds:
            raise SpecError("--seeds: not with a sweep", hint="sweep over seed instead: "
                            "sweep: {parameters: {seed: {grid: [0, 1, 2]}}}")
        import visionflow.cluster as cluster

        with joined_cluster(args.address, "ray"):
            return _report_sweep(cluster.sweep(spec))
    module = _backend_module(spec.resources.backend)
    with joined_cluster(args.address, spec.resources.backend):
        if args.seeds:
            return _report_seeds(module.run_seeds(spec, args.seeds))
        return _report(module.run(spec))


def joined_cluster(address: str | None, backend: str):
    """``--address``: the Ray cluster to join for the command (nothing without one)."""
    if address is None:
        return contextlib.nullcontext()
    if backend != "ray":
        from visionflow.errors import SpecError

        raise SpecError(f"--address {address}: joins a Ray cluster, but resources.backend is "
                        f"{backend!r}", hint="add --backend ray")
    from visionflow.cluster.local import connected_ray

    return connected_ray(address)


def _resumed_backend(run_dir: str) -> str:
    from visionflow.rundir import RunDirectory
    from visionflow.spec import load_spec

    spec = load_spec(RunDirectory.open(run_dir).spec_path)
    return "ray" if spec.sweep is not None else spec.resources.backend


def _backend_module(backend: str):
    if backend == "ray":
        import visionflow.cluster as module
    else:
        import visionflow.pipelines as module
    return module


def _report(results) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="results", show_header=True)
    table.add_column("stage")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for stage, metrics in results.stages.items():
        for name, value in metrics.items():
            table.add_row(stage, name, f"{value:.4f}")
    console = Console()
    console.print(table)
    mirrored = f" (mirrored to {results.remote})" if getattr(results, "remote", None) else ""
    console.print(f"run directory: {results.run_dir}{mirrored}")
    return 0


def _report_seeds(results) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(results.runs)} seeds", show_header=True)
    for column in ("metric", "mean", "std"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, stats in results.summary.items():
        table.add_row(name, f"{stats['mean']:.4f}", f"{stats['std']:.4f}")
    console = Console()
    console.print(table)
    console.print(f"seeds summary: {results.run_dir / 'seeds_summary.json'}")
    return 0


def _report_sweep(results) -> int:
    from rich.console import Console
    from rich.table import Table

    rows = results.rows
    table = Table(title=f"sweep: {len(rows)} trials, best first", show_header=True)
    columns = [c for c in rows[0] if c not in ("run_dir", "error")] if rows else []
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])
                        for c in columns))
    console = Console()
    console.print(table)
    console.print(f"sweep directory: {results.run_dir}")
    return 0


def _list(kind: str | None) -> int:
    from visionflow.registry import REGISTRIES

    kinds = [kind] if kind else list(REGISTRIES)
    for name in kinds:
        registry = REGISTRIES[name]
        print(f"{name}:")
        for entry in registry.entries():
            batch = entry.tags.get("batch")
            suffix = f"  [{batch.__name__}]" if batch is not None else ""
            description = textwrap.shorten(entry.description or "", 70)
            print(f"  {entry.name:24s} {description}{suffix}")
    return 0
