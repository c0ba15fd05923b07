"""``visionflow run``: a pipeline spec (or a resumed run, a sweep, several seeds), locally or on Ray,
and the tables it prints."""

from __future__ import annotations

import argparse
import contextlib


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from visionflow.errors import SpecError

    if args.resume:
        if args.spec or args.overrides or args.seeds is not None:
            raise SpecError(
                "--resume takes the run directory alone",
                hint="the run's spec.resolved.yaml is reused as it is",
            )
        backend = _resumed_backend(args.resume)
        with joined_cluster(args.address, backend):
            results = backend_module(backend).resume(args.resume)
        return _report_resumed(results)
    if not args.spec:
        parser.parse_args(["run", "--help"])
    from visionflow.spec import load_spec

    overrides = list(args.overrides)
    if args.backend:
        overrides.append(f"resources.backend={args.backend}")
    spec = load_spec(args.spec, overrides)
    if spec.sweep is not None:
        if args.seeds is not None:
            raise SpecError(
                "--seeds: not with a sweep",
                hint="sweep over seed instead: sweep: {parameters: {seed: {grid: [0, 1, 2]}}}",
            )
        import visionflow.cluster as cluster

        with joined_cluster(args.address, "ray"):
            return _report_sweep(cluster.sweep(spec))
    module = backend_module(spec.resources.backend)
    if args.seeds is not None:
        from visionflow.pipelines.runner import check_seeds

        check_seeds(spec.seed, args.seeds)  # before Ray starts
    with joined_cluster(args.address, spec.resources.backend):
        if args.seeds is not None:  # --seeds 0 is refused, not taken for one run
            return _report_seeds(module.run_seeds(spec, args.seeds))
        return report_results(module.run(spec))


def joined_cluster(address: str | None, backend: str):
    """``--address``: the Ray cluster to join for the command (nothing without one)."""
    if address is None:
        return contextlib.nullcontext()
    if backend != "ray":
        from visionflow.errors import SpecError

        raise SpecError(
            f"--address {address}: joins a Ray cluster, but resources.backend is {backend!r}",
            hint="add --backend ray",
        )
    from visionflow.cluster.local import connected_ray

    return connected_ray(address)


def _resumed_backend(run_dir: str) -> str:
    from visionflow.rundir import RunDirectory
    from visionflow.spec import load_spec

    spec = load_spec(RunDirectory.open(run_dir).spec_path)
    return "ray" if spec.sweep is not None else spec.resources.backend


def backend_module(backend: str):
    if backend == "ray":
        import visionflow.cluster as module
    else:
        import visionflow.pipelines as module
    return module


def _report_resumed(results) -> int:
    """The table of a resumed sweep, ``--seeds`` run or single run."""
    if hasattr(results, "best"):
        return _report_sweep(results)
    if hasattr(results, "summary"):
        return _report_seeds(results)
    return report_results(results)


def report_results(results) -> int:
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
        table.add_row(
            *(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns)
        )
    console = Console()
    console.print(table)
    console.print(f"sweep directory: {results.run_dir}")
    return 0
