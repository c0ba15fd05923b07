"""COCO bbox evaluation end to end from JSON files: `visionflow eval coco` against hotcoco and the others.

    python benchmarks/coco_eval.py --images 5000 100 --repeat 5 --skip pycocotools
                                                        # val2017-sized (5k images, ~35k GT, 500k
                                                        # dets), then 100 images: start-up dominates
    python benchmarks/coco_eval.py --images 80000 --categories 365 --dets-per-image 15 --shards 1 2
                                                        # Objects365-sized (~1.2M detections)

Writes a seeded synthetic ground truth and results file (``benchmarks/coco_data.py``) per size,
then runs each tool in its own fresh Python process (load both JSON files, evaluate, accumulate,
summarize, print), ``--repeat`` times in rounds: wall seconds of the whole process, its CPU
seconds (user + system, steadier than wall time on a shared machine; and the user part alone,
whose system part swings with the machine's memory state) and its peak memory (the kernel's
peak RSS), medians over the runs, each measured by a small launcher process that spawns the tool
and waits for it. ``visionflow eval coco`` runs as the ``visionflow`` program a user runs
(``visionflow.cli.console``, the summary printed); one more, untimed run writes its stats with
``--json`` for the comparison. A sharded run also gets the peak of its whole process tree (the
launcher, the driver, Ray's daemons and workers; RSS summed every 0.2 s, so shared pages count
once per process). Prints one row per tool, the load
average, and ``ratio = ours / hotcoco`` for time and memory. Tools that are not installed are
listed as such. Exits 1 when visionflow's stats differ from hotcoco's. visionflow's modules are
compiled to bytecode first, as an installed wheel's (and hotcoco's) are.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.coco_data import synthetic_coco

#: runs ``argv[1:]`` and prints its wall seconds, user and system CPU seconds, peak RSS (kB) and
#: exit code. It starts as ``python -S`` (a few MB) because the kernel's peak RSS of a child counts
#: the RSS of the process it was spawned from: this one's, not the benchmark's with its inputs.
LAUNCHER = (
    "import os, sys, time; started = time.perf_counter(); "
    "pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ); "
    "_, status, use = os.wait4(pid, 0); "
    "print('USAGE', time.perf_counter() - started, use.ru_utime, use.ru_stime, use.ru_maxrss, "
    "os.waitstatus_to_exitcode(status))"
)
PRINT_STATS = "import json, sys; print('STATS', json.dumps([float(v) for v in {stats}]))"
TOOLS = {  # name: (module that must import, program run as `python -c` with argv gt, dt)
    "pycocotools": (
        "pycocotools",
        "from pycocotools.coco import COCO; from pycocotools.cocoeval import COCOeval; "
        "import sys; g = COCO(sys.argv[1]); e = COCOeval(g, g.loadRes(sys.argv[2]), 'bbox'); "
        "e.evaluate(); e.accumulate(); e.summarize(); " + PRINT_STATS.format(stats="e.stats"),
    ),
    "faster-coco-eval": (
        "faster_coco_eval",
        "from faster_coco_eval import COCO, COCOeval_faster; import sys; "
        "g = COCO(sys.argv[1]); e = COCOeval_faster(g, g.loadRes(sys.argv[2]), 'bbox'); "
        "e.evaluate(); e.accumulate(); e.summarize(); " + PRINT_STATS.format(stats="e.stats"),
    ),
    "vernier (pycocotools' loader)": (
        "vernier",
        "from pycocotools.coco import COCO; from vernier import COCOeval; "
        "import sys; g = COCO(sys.argv[1]); e = COCOeval(g, g.loadRes(sys.argv[2]), "
        "'bbox'); e.evaluate(); e.accumulate(); e.summarize(); "
        + PRINT_STATS.format(stats="e.stats"),
    ),
    "ultrafast-pycocotools": (
        "ultrafast_pycocotools",
        "from ultrafast_pycocotools import COCO, COCOeval; import sys; "
        "g = COCO(sys.argv[1], verbose=False); e = COCOeval(g, g.loadRes(sys.argv[2]), 'bbox'); "
        "e.evaluate(); e.accumulate(); e.summarize(); " + PRINT_STATS.format(stats="e.stats"),
    ),
    "hotcoco": (
        "hotcoco",
        "from hotcoco import COCO, COCOeval; import sys; g = COCO(sys.argv[1]); "
        "e = COCOeval(g, g.load_res(sys.argv[2]), 'bbox'); e.evaluate(); e.accumulate(); e.summarize(); "
        + PRINT_STATS.format(stats="e.stats"),
    ),
    "visionflow eval coco": (  # the `visionflow` program; --json in an untimed run
        "visionflow",
        "import sys; from visionflow.cli import console; "
        "sys.argv = ['visionflow', 'eval', 'coco', '--gt', sys.argv[1], '--dt', sys.argv[2], "
        "*sys.argv[4:]]; console()",
    ),
}
OURS = "visionflow eval coco"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=int, nargs="+", default=[5000], help="one input per size, in turn"
    )
    parser.add_argument("--categories", type=int, default=80)
    parser.add_argument("--dets-per-image", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip", nargs="*", default=[], help="tools to leave out (e.g. pycocotools)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="R",
        help="run every tool R times (in rounds, so a change of load hits all) and report medians",
    )
    parser.add_argument(
        "--shards",
        type=int,
        nargs="*",
        default=[],
        help="also run `visionflow eval coco --shards N` for each N (embedded Ray)",
    )
    parser.add_argument(
        "--same-blas-threads",
        action="store_true",
        help="like for like: run every tool with OPENBLAS_NUM_THREADS=1, as `visionflow eval "
        "coco` runs itself (numpy's OpenBLAS then starts no worker threads, which spin for about "
        "0.1 s of CPU after numpy's import in every process that imports it)",
    )
    return parser.parse_args(argv)


def write_inputs(folder: Path, args: argparse.Namespace, images: int) -> tuple[Path, Path, str]:
    gt, dt = synthetic_coco(
        seed=args.seed,
        images=images,
        categories=args.categories,
        dets_per_image=args.dets_per_image,
    )
    gt_path, dt_path = folder / "gt.json", folder / "dt.json"
    gt_path.write_bytes(orjson.dumps(gt))
    dt_path.write_bytes(orjson.dumps(dt))
    megabytes = (gt_path.stat().st_size + dt_path.stat().st_size) / 1e6
    return (
        gt_path,
        dt_path,
        (
            f"{len(gt['images'])} images, {len(gt['annotations'])} GT, {len(dt)} detections, "
            f"{len(gt['categories'])} categories, {megabytes:.1f} MB of JSON"
        ),
    )


def run_process(program: str, *argv: str) -> tuple[float, float, float, float, str, float]:
    """(wall seconds, CPU seconds, peak RSS in MB, peak RSS of the process tree in MB, stdout,
    user CPU seconds) of ``python -c program argv...``. The CPU seconds are user + system; the
    system part (page faults, the scheduler) swings with the machine's load and memory state."""
    process = subprocess.Popen(
        [sys.executable, "-S", "-c", LAUNCHER, sys.executable, "-c", program, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    tree_peak = [0]
    sampler = threading.Thread(target=_sample_tree_rss, args=(process.pid, tree_peak), daemon=True)
    sampler.start()
    output = process.stdout.read()
    process.wait()
    sampler.join()
    seconds, user, system, peak_kb, code = output.rsplit("USAGE ", 1)[1].split()
    if int(code) != 0:
        raise SystemExit(f"{program[:60]}... exited with {code}")
    cpu = float(user) + float(system)
    return float(seconds), cpu, int(peak_kb) / 1024, tree_peak[0] / 1024, output, float(user)


def _sample_tree_rss(root: int, peak: list[int]) -> None:
    """Keep ``peak[0]`` the largest sum of VmRSS (kB) over ``root`` and its descendants until it exits."""
    while os.path.exists(f"/proc/{root}/stat") and _state(root) not in ("Z", "X", None):
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                parents[int(entry)] = _parent(int(entry))
        tree, grew = {root}, True
        while grew:
            children = {pid for pid, parent in parents.items() if parent in tree} - tree
            tree |= children
            grew = bool(children)
        peak[0] = max(peak[0], sum(_rss_kb(pid) for pid in tree))
        time.sleep(0.2)


def _proc_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _state(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[0] if fields else None


def _parent(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[1]) if fields else None


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as file:
            return next((int(line.split()[1]) for line in file if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


def installed(module: str) -> bool:
    return (
        subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode
        == 0
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.same_blas_threads:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"  # the tools' processes inherit it
        print("every tool runs with OPENBLAS_NUM_THREADS=1")
    compile_visionflow()
    equal = True
    for images in args.images:
        with tempfile.TemporaryDirectory(prefix="coco_bench_") as folder:
            equal &= benchmark_input(args, images, Path(folder))
    return 0 if equal else 1


def compile_visionflow() -> None:
    """Write the bytecode of visionflow's modules (``__pycache__``, ignored by git), as pip does
    when it installs the wheel, so that every tool starts from compiled modules: hotcoco's and
    numpy's were compiled when they were installed, and with ``PYTHONDONTWRITEBYTECODE`` set (as
    on the project's dev box) an editable checkout's never are, and each ``visionflow`` process
    would compile the dozen modules it imports (15-17 ms of CPU)."""
    package = Path(__file__).resolve().parents[1] / "visionflow"
    if not compileall.compile_dir(str(package), quiet=1):
        raise SystemExit(f"could not compile {package}")
    print(
        f"visionflow's modules compiled to bytecode first, as an installed wheel's are ({package})"
    )


def benchmark_input(args: argparse.Namespace, images: int, folder: Path) -> bool:
    """Every tool on one input, ``args.repeat`` times; prints the rows and the ratios. True when
    visionflow's stats equal hotcoco's (or hotcoco did not run)."""
    gt_path, dt_path, description = write_inputs(folder, args, images)
    files = (str(gt_path), str(dt_path), str(folder / "out.json"))
    print(f"input: {description}; load average {load_average()} at the start")
    tools = {}
    for name, (module, program) in TOOLS.items():
        if name in args.skip or not installed(module):
            print(f"{name:<30} {'skipped' if name in args.skip else 'not installed'}")
        else:
            tools[name] = program
    runs = {name: [] for name in tools}
    for _ in range(args.repeat):
        for name, program in tools.items():
            runs[name].append(run_process(program, *files))
    rows, stats = {}, {}
    for name, measured in runs.items():
        rows[name] = tuple(statistics.median(run[i] for run in measured) for i in (0, 1, 2, 5))
        stats[name] = (
            orjson.loads(measured[0][4].split("STATS ", 1)[1].splitlines()[0])
            if (name != OURS)
            else None
        )
        cpu = ", ".join(f"{run[1]:.3f}" for run in measured)
        tree = max(run[3] for run in measured)  # the launcher (~10 MB) and any children included
        print(
            f"{name:<30} {rows[name][0]:8.3f} s wall {rows[name][1]:8.3f} s CPU "
            f"({rows[name][3]:.3f} user) {rows[name][2]:7.0f} MB peak ({tree:.0f} MB tree)"
            + (f"  (CPU of each run: {cpu})" if len(measured) > 1 else "")
        )
    if OURS in tools:  # the stats, from one more run that writes them (not timed)
        run_process(tools[OURS], *files, "--json", files[2])
        stats[OURS] = orjson.loads(Path(files[2]).read_bytes())["stats"]
    for shards in args.shards:
        stats[f"shards {shards}"] = run_sharded(shards, files)
    print(f"load average {load_average()} at the end")
    if OURS in rows and "hotcoco" in rows:
        ratios = [ours / reference for ours, reference in zip(rows[OURS], rows["hotcoco"])]
        print(
            f"ratio = ours / hotcoco ({images} images, medians of {args.repeat}): wall time "
            f"{ratios[0]:.3f}, CPU time {ratios[1]:.3f} (user {ratios[3]:.3f}), "
            f"peak memory {ratios[2]:.3f}"
        )
    return compare_stats(stats)


def run_sharded(shards: int, files: tuple[str, str, str]) -> list[float]:
    """One ``visionflow eval coco --shards N`` run: its row, the driver's timing; its stats."""
    program = TOOLS[OURS][1]
    seconds, cpu, megabytes, tree, _, _ = run_process(
        program, *files, "--json", files[2], "--shards", str(shards)
    )
    print(
        f"{f'visionflow --shards {shards}':<30} {seconds:8.2f} s wall {cpu:8.2f} s CPU (driver) "
        f"{megabytes:7.0f} MB peak (driver), {tree:.0f} MB peak (process tree)"
    )
    report = orjson.loads(Path(files[2]).read_bytes())
    print(
        f"{'':<30} driver's timing: "
        + ", ".join(f"{k} {v:.2f}" for k, v in report["timing"].items())
    )
    return report["stats"]


def compare_stats(stats: dict[str, list[float] | None]) -> bool:
    """Print each tool's largest difference from hotcoco's stats; True when ours are equal."""
    reference = stats.get("hotcoco")
    if reference is None:
        return True
    for name, values in stats.items():
        print(
            f"max |stats - hotcoco's| {name}: {max(abs(a - b) for a, b in zip(values, reference)):.1e}"
        )
    return all(stats[n] == reference for n in stats if n.startswith(("visionflow", "shards")))


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
