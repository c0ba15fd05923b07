"""What a submitted Ray Job runs: one pipeline spec, then its run directory and summary.

    python -m visionflow.cluster.job_entry SPEC.yaml [--set KEY=VALUE ...]
    python -m visionflow.cluster.job_entry [--set ...]     # the YAML of $VISIONFLOW_JOB_SPEC

``visionflow submit`` uses the second form: the validated spec travels as YAML in the job's
runtime_env, so the job does not depend on files of the submitting machine. ``backend: local``
runs in the job's own process; ``backend: ray`` joins the job's cluster (``ray.init()`` reads
the ``RAY_ADDRESS`` the Jobs API sets) and fits on Ray Train workers there.

The last lines of the log are ``run directory: PATH`` and ``summary: {JSON}``. Exit codes are
the CLI's: 2 for a bad spec, 1 for a run that failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

SPEC_ENV = "VISIONFLOW_JOB_SPEC"


def main(argv: Sequence[str] | None = None) -> int:
    from visionflow.errors import VisionFlowError

    args = _parser().parse_args(argv)
    try:
        spec = load_job_spec(args.spec, args.overrides)
        run_dir = run_spec(spec)
    except VisionFlowError as error:
        print(f"visionflow: error: {error}", file=sys.stderr)
        return error.exit_code
    print(f"run directory: {run_dir}")
    summary = json.loads((run_dir / "summary.json").read_text())
    print(f"summary: {json.dumps(summary)}", flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    from visionflow.overrides import add_set_argument

    parser = argparse.ArgumentParser(
        prog="python -m visionflow.cluster.job_entry",
        description="Run one pipeline spec inside a Ray Job.",
    )
    parser.add_argument("spec", nargs="?", help=f"pipeline YAML (default: ${SPEC_ENV})")
    add_set_argument(parser)
    return parser


def load_job_spec(path: str | None, overrides: Sequence[str]):
    """The spec from ``path``, or from the YAML text of ``$VISIONFLOW_JOB_SPEC``."""
    from visionflow.errors import SpecError
    from visionflow.spec import apply_overrides, load_spec, parse_spec, read_yaml

    if path:
        return load_spec(path, overrides)
    text = os.environ.get(SPEC_ENV)
    if not text:
        raise SpecError(f"no spec: give SPEC.yaml or set ${SPEC_ENV} to the spec's YAML")
    raw = read_yaml(text)
    if not isinstance(raw, dict):
        raise SpecError(f"${SPEC_ENV}: the spec must be a mapping of keys")
    return parse_spec(apply_overrides(raw, overrides), source=f"${SPEC_ENV}")


def run_spec(spec):
    """Run ``spec`` on its backend; return the run directory."""
    if spec.resources.backend == "ray":
        import ray

        from visionflow import cluster

        ray.init()  # the job's cluster; cluster.run reuses it instead of starting its own
        return cluster.run(spec).run_dir
    from visionflow.pipelines import run

    return run(spec).run_dir


if __name__ == "__main__":
    sys.exit(main())
