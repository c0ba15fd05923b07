"""``visionflow cluster start|status|stop``, ``visionflow submit``, ``visionflow jobs ...``.

    add_cluster_commands(subparsers)     # in visionflow.cli.build_parser
    return args.cluster_command(args)    # in visionflow.cli.main, for these commands

Each command is a function of the parsed arguments returning the exit code; errors are
VisionFlowErrors, which the CLI prints as one line and a hint. Ray is imported only when a
command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from visionflow.argtypes import int_in
from visionflow.overrides import add_set_argument

CLUSTER_EXAMPLES = """\
examples:
  visionflow cluster start --num-cpus 2                 local head on 127.0.0.1 (dashboard :8265)
  visionflow cluster start --port 6380 --dashboard-port 8266 --temp-dir /tmp/vf-other
  visionflow cluster start --host 10.0.0.5              needs a token: ray get-auth-token --generate
  visionflow cluster status
  visionflow cluster stop
"""
SUBMIT_EXAMPLES = """\
examples:
  visionflow submit examples/digits_classification.yaml --wait
  visionflow submit examples/digits_classification.yaml --set trainer.max_epochs=3 \\
      --address http://10.0.0.5:8265 --token-file ~/.ray/auth_token --working-dir .
  visionflow submit project/spec.yaml --working-dir project --wait   (spec paths relative to project/)
"""
JOBS_EXAMPLES = """\
examples:
  visionflow jobs list
  visionflow jobs status raysubmit_XYZ
  visionflow jobs logs raysubmit_XYZ --follow
  visionflow jobs stop raysubmit_XYZ --address http://10.0.0.5:8265
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def add_cluster_commands(subparsers) -> None:
    """Add ``cluster``, ``submit`` and ``jobs`` to the CLI's subparsers."""
    _add_cluster(subparsers)
    _add_submit(subparsers)
    _add_jobs(subparsers)


def _parser(subparsers, name: str, help: str, examples: str, handler=None):
    parser = subparsers.add_parser(
        name, help=help, description=help, epilog=examples, formatter_class=_Formatter
    )
    if handler is not None:
        parser.set_defaults(cluster_command=handler)
    return parser


def _add_connection(parser) -> None:
    parser.add_argument(
        "--address",
        metavar="URL",
        help="the head's dashboard, http://HOST:8265 "
        "(default: $RAY_ADDRESS, else http://127.0.0.1:8265)",
    )
    parser.add_argument(
        "--token-file",
        metavar="PATH",
        help="Ray auth token of a cluster with token auth (default: $RAY_AUTH_TOKEN)",
    )


def _add_cluster(subparsers) -> None:
    from visionflow.cluster import head

    cluster = _parser(subparsers, "cluster", "a local Ray head for development", CLUSTER_EXAMPLES)
    actions = cluster.add_subparsers(dest="cluster_action", metavar="ACTION", required=True)
    start = _parser(
        actions,
        "start",
        "start a Ray head (loopback only unless --host)",
        CLUSTER_EXAMPLES,
        _cluster_start,
    )
    start.add_argument("--num-cpus", type=int, metavar="N", help="default: the machine's")
    start.add_argument("--num-gpus", type=int, metavar="G", help="default: the machine's")
    for flag, default, metavar, what in (
        ("--port", head.DEFAULT_PORT, "P", "GCS port"),
        ("--dashboard-port", head.DEFAULT_DASHBOARD_PORT, "D", "dashboard and Jobs API port"),
    ):
        start.add_argument(
            flag,
            type=int_in(1, 65535),
            default=default,
            metavar=metavar,
            help=f"{what} (default %(default)s)",
        )
    start.add_argument(
        "--host",
        default=head.LOOPBACK,
        help="address the node and dashboard "
        "bind (default %(default)s); another one requires token auth",
    )
    start.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="with --host beyond "
        "loopback: start without token auth (anyone who reaches the head can run "
        "code as you)",
    )
    for action, handler, text in (
        ("status", _cluster_status, "nodes and resources of a head"),
        ("stop", _cluster_stop, "stop the head (only its processes)"),
    ):
        parser = _parser(actions, action, text, CLUSTER_EXAMPLES, handler)
        if action == "status":
            _add_connection(parser)
    for parser in actions.choices.values():
        parser.add_argument(
            "--temp-dir",
            type=_folder_or_new,
            default=head.DEFAULT_TEMP_DIR,
            metavar="DIR",
            help="the head's Ray temp dir, which names it (default %(default)s)",
        )


def _folder_or_new(text: str) -> str:
    """``--temp-dir``: a folder, or a path where one can be made; not a file."""
    from pathlib import Path

    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text}: not a folder")
    return text


def _add_submit(subparsers) -> None:
    submit = _parser(
        subparsers, "submit", "run a pipeline spec as a Ray Job", SUBMIT_EXAMPLES, _submit
    )
    submit.add_argument("spec", help="pipeline YAML (validated here before submitting)")
    add_set_argument(submit)
    submit.add_argument(
        "--wait",
        action="store_true",
        help="follow the logs until the job ends; exit 0 if it SUCCEEDED, 1 otherwise",
    )
    submit.add_argument(
        "--working-dir",
        nargs="?",
        const=".",
        metavar="DIR",
        help="upload DIR (default: the current directory) as the job's working "
        "directory; the spec's relative paths are then relative to DIR",
    )
    submit.add_argument(
        "--python",
        metavar="EXE",
        help="the job's Python (default: this one; "
        "give `python` for a cluster whose machines differ from this one)",
    )
    submit.add_argument(
        "--pip",
        action="append",
        default=[],
        metavar="REQUIREMENT",
        help="install this in the job's own environment first (Ray runtime_env "
        "pip; repeatable), e.g. --pip visionflow==0.3.0 or a wheel path on "
        "the cluster; the job then runs that environment's python",
    )
    _add_connection(submit)


def _add_jobs(subparsers) -> None:
    jobs = _parser(subparsers, "jobs", "list, inspect and stop Ray Jobs", JOBS_EXAMPLES)
    actions = jobs.add_subparsers(dest="jobs_action", metavar="ACTION", required=True)
    _add_connection(_parser(actions, "list", "every job of the cluster", JOBS_EXAMPLES, _jobs_list))
    for action, handler, text in (
        ("status", _jobs_status, "a job's status and message"),
        ("logs", _jobs_logs, "a job's logs"),
        ("stop", _jobs_stop, "ask a job to stop"),
    ):
        parser = _parser(actions, action, text, JOBS_EXAMPLES, handler)
        parser.add_argument("job_id", metavar="ID", help="job id or submission id")
        _add_connection(parser)
    actions.choices["logs"].add_argument(
        "--follow", action="store_true", help="keep printing until the job ends"
    )


def run(args: argparse.Namespace) -> int:
    """Run the parsed cluster/submit/jobs command; return its exit code."""
    return args.cluster_command(args)


# ------------------------------------------------------------------------------------- handlers


def _cluster_start(args) -> int:
    from visionflow.cluster.head import LOOPBACK, HeadConfig, start_head

    info = start_head(
        HeadConfig(
            num_cpus=args.num_cpus,
            num_gpus=args.num_gpus,
            port=args.port,
            dashboard_port=args.dashboard_port,
            host=args.host,
            temp_dir=args.temp_dir,
            insecure_no_auth=args.insecure_no_auth,
        )
    )
    if args.host != LOOPBACK and info.auth_mode != "token":
        print(
            f"visionflow: warning: the head on {args.host} has NO authentication: anyone who "
            f"can reach ports {args.port} and {args.dashboard_port} can run code as you",
            file=sys.stderr,
        )
    stop = "visionflow cluster stop" + _temp_dir_flag(args.temp_dir)
    print(
        f"Ray head running (auth: {info.auth_mode}), temp dir {info.temp_dir}\n"
        f"  submit:    visionflow submit SPEC.yaml --address {info.dashboard_url}\n"
        f"  join:      visionflow run SPEC.yaml --address {info.gcs_address}\n"
        f"  dashboard: {info.dashboard_url}\n"
        f"  stop:      {stop}"
    )
    return 0


def _temp_dir_flag(temp_dir: str) -> str:
    from visionflow.cluster.head import DEFAULT_TEMP_DIR

    return "" if temp_dir == DEFAULT_TEMP_DIR else f" --temp-dir {temp_dir}"


def _cluster_status(args) -> int:
    from visionflow.cluster.head import ClusterError, cluster_status, read_head
    from visionflow.cluster.jobs import auth_headers, resolve_address

    address = args.address
    if address is None:
        info = read_head(args.temp_dir)
        if info is None:
            raise ClusterError(
                f"no head is running in {args.temp_dir}",
                hint="`visionflow cluster start`, or give --address URL",
            )
        address = info.dashboard_url
    address = resolve_address(address)
    print(f"dashboard: {address}")
    print(cluster_status(address, auth_headers(args.token_file)))
    return 0


def _cluster_stop(args) -> int:
    from visionflow.cluster.head import stop_head

    count = stop_head(args.temp_dir)
    print(
        f"stopped {count} Ray processes of the head in {args.temp_dir}"
        if count
        else f"no head was running in {args.temp_dir}"
    )
    return 0


def _submit(args) -> int:
    from visionflow.cluster import jobs
    from visionflow.spec import load_spec

    spec = load_spec(args.spec, args.overrides)  # bad input fails before any connection
    if args.working_dir is not None:
        jobs.check_working_dir(args.working_dir)
    client = jobs.connect(args.address, args.token_file)
    job_id = jobs.submit_spec(
        client, spec, working_dir=args.working_dir, python=args.python, pip=args.pip
    )
    print(f"submitted job {job_id} to {client.get_address()}")
    if not args.wait:
        print(f"  follow: visionflow jobs logs {job_id} --follow")
        return 0
    jobs.wait_for_job(client, job_id)
    print(f"job {job_id} SUCCEEDED")
    return 0


def _jobs_list(args) -> int:
    from visionflow.cluster import jobs

    for job in jobs.list_jobs(jobs.connect(args.address, args.token_file)):
        spec = (job.metadata or {}).get("visionflow_spec", "-")
        print(f"{job.submission_id or job.job_id:32s} {str(job.status):10s} {spec}")
    return 0


def _jobs_status(args) -> int:
    from visionflow.cluster import jobs

    info = jobs.job_info(jobs.connect(args.address, args.token_file), args.job_id)
    print(
        json.dumps(
            {
                "job_id": args.job_id,
                "status": str(info.status),
                "message": info.message,
                "entrypoint": info.entrypoint,
            },
            indent=2,
        )
    )
    return 0


def _jobs_logs(args) -> int:
    from visionflow.cluster import jobs

    client = jobs.connect(args.address, args.token_file)
    if args.follow:
        jobs.follow_logs(client, args.job_id)
    else:
        jobs.job_info(client, args.job_id)
        print(client.get_job_logs(args.job_id), end="")
    return 0


def _jobs_stop(args) -> int:
    from visionflow.cluster import jobs

    stopped = jobs.stop_job(jobs.connect(args.address, args.token_file), args.job_id)
    print(
        f"stop requested for job {args.job_id}"
        if stopped
        else f"job {args.job_id} had already ended"
    )
    return 0
