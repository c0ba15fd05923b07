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
from typing import Any, NoReturn

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
EVAL_EXAMPLES = """\
examples:
  visionflow eval run runs/digits_lenet5/20261123-101500/checkpoints/last.ckpt --shards 4
  visionflow eval coco --gt instances_val.json --dt detections.json --iou-type bbox --json out.json
"""


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser. Given ``argv``, only the parser of the command it names is
    built (``eval coco`` alone, not the other commands and the modules they import: start-up
    time); without one, or for a name that is not a command, every command's."""
    parser = argparse.ArgumentParser(
        prog="visionflow",
        description="Train and evaluate computer-vision models, "
        "locally or on Ray, from one YAML pipeline spec.",
    )
    parser.add_argument("--version", action="version", version=f"visionflow {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _named_commands(argv)
    for names, add in (
        (("run",), _add_run),
        (("list",), _add_list),
        (("eval",), lambda commands: _add_eval(commands, chosen[1])),
        (("data",), _add_data),
        (("cluster", "submit", "jobs"), _add_cluster),
    ):
        if chosen[0] is None or chosen[0] in names:
            add(commands)
    return parser


#: every command name, for _named_commands (the cluster group adds three)
COMMANDS = ("run", "list", "eval", "data", "cluster", "submit", "jobs")


def _named_commands(argv: Sequence[str] | None) -> tuple[str | None, str | None]:
    """(the command ``argv`` names, and its first word after it: the eval kind), or (None, None)
    where ``argv`` names no known command (``--help``, a typo: then every parser is built)."""
    words = [word for word in (argv or ()) if not word.startswith("-")]
    if not words or words[0] not in COMMANDS:
        return None, None
    return words[0], words[1] if len(words) > 1 else None


def _add_list(commands) -> None:
    listing = add_command(
        commands, "list", "list registered tasks, datamodules, nets, ...", LIST_EXAMPLES, _Formatter
    )
    listing.add_argument(
        "kind",
        nargs="?",
        choices=["tasks", "datamodules", "nets", "transforms", "stages"],
        help="one registry (default: all)",
    )


def _add_data(commands) -> None:
    from visionflow.cli.data import add_data_commands

    add_data_commands(commands, _Formatter)


def _add_cluster(commands) -> None:
    from visionflow.cli.cluster import add_cluster_commands

    add_cluster_commands(commands)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def add_command(
    subparsers: Any, name: str, help: str, examples: str, formatter: type, **more: Any
) -> argparse.ArgumentParser:
    """The sub-command ``name`` of ``subparsers``: its one-line ``help``, its ``examples`` below
    its own help (printed by ``formatter``) and ``more`` of ``add_parser``'s arguments."""
    return subparsers.add_parser(
        name, help=help, epilog=examples, formatter_class=formatter, **more
    )


def _add_run(commands) -> None:
    from visionflow.overrides import add_set_argument  # YAML: not for the other commands

    run = add_command(
        commands,
        "run",
        "run a pipeline spec",
        RUN_EXAMPLES,
        _Formatter,
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


def _add_eval(commands, kind: str | None = None) -> None:
    """``eval`` and its kinds; only ``kind`` when it is one."""
    from visionflow.cli.eval import EVAL_KINDS, add_eval_kinds

    evaluate = add_command(
        commands,
        "eval",
        "score a trained model (in shards, on Ray); COCO/LVIS, panoptic, semantic results files",
        EVAL_EXAMPLES,
        _Formatter,
    )
    kinds = evaluate.add_subparsers(dest="eval_kind", metavar="KIND", required=True)
    only = kind if kind in ("run", *EVAL_KINDS) else None
    if only in (None, "run"):
        _add_eval_run(kinds)
    if only != "run":
        add_eval_kinds(kinds, _Formatter, only)


def _add_eval_run(kinds) -> None:
    from visionflow.cli import eval_run

    model = add_command(
        kinds,
        "run",
        "score a checkpoint on a dataset split, in shards",
        eval_run.EXAMPLES,
        _Formatter,
        description="Score a trained model on a dataset split, in shards "
        "(on Ray workers with the ray backend), as a one-stage "
        "run; its run directory holds evaluation_<split>.json.",
    )
    eval_run.add_arguments(model)
    add_address_argument(model)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names (default: ``sys.argv[1:]``) in this process; its exit code."""
    return _run(*_parsed(argv))


def console() -> NoReturn:
    """The ``visionflow`` program (``[project.scripts]``): :func:`main` in a process of its own.

    An evaluation of results files in this process (``eval coco | panoptic | semantic``, not
    ``--shards``) calls no BLAS and leaves nothing behind to clean up, so two costs of a plain
    exit are skipped: numpy's OpenBLAS does not start its worker threads (each one spins for
    some 0.1 s of CPU after numpy's import before it sleeps), and the process ends with
    ``os._exit`` once its output is flushed instead of freeing, one object at a time, what the
    engine holds (its records of every detection: about 0.03 s of CPU per 500k). Every other
    command exits normally (atexit handlers, Ray's shutdown, Lightning's loggers)."""
    parser, args = _parsed(None)
    if not evaluates_files_in_process(args):
        sys.exit(_run(parser, args))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before the command imports numpy
    exit_at_once(_run(parser, args))


def evaluates_files_in_process(args: argparse.Namespace) -> bool:
    """True for ``eval coco | panoptic | semantic`` run in this process (not ``--shards``)."""
    return (
        getattr(args, "eval_kind", None) in ("coco", "panoptic", "semantic")
        and getattr(args, "shards", None) is None
    )


def exit_at_once(code: int) -> NoReturn:
    """End the process with ``code`` once stdout and stderr are flushed, without running atexit
    handlers or freeing its objects: only for a command whose files are written and closed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _parsed(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    return parser, parser.parse_args(argv)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _dispatch(args, parser)
    except VisionFlowError as error:
        if args.debug:
            raise
        print(f"visionflow: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("visionflow: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the command ``args`` name (its module imported only now)."""
    if args.command == "run":
        from visionflow.cli.run import run_command

        return run_command(args, parser)
    if args.command == "list":
        from visionflow.cli.listing import list_command

        return list_command(args.kind)
    if args.command == "data":
        from visionflow.cli.data import data_command

        return data_command(args)
    if hasattr(args, "cluster_command"):  # cluster, submit, jobs
        return args.cluster_command(args)
    if args.eval_kind == "run":
        from visionflow.cli.eval_run import evaluate_command

        return evaluate_command(args)
    from visionflow.cli.eval import run as eval_kind_command

    return eval_kind_command(args)
