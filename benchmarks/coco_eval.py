"""COCO bbox evaluation end to end from JSON files: `visionflow eval coco` against hotcoco and the others.

    python benchmarks/coco_eval.py                      # val2017-sized: 5k images, ~35k GT, 500k dets
    python benchmarks/coco_eval.py --images 100         # small inputs: process start-up dominates
    python benchmarks/coco_eval.py --images 80000 --categories 365 --dets-per-image 15 --shards 1 2
                                                        # Objects365-sized (~1.2M detections)

Writes a seeded synthetic ground truth and results file (``benchmarks/coco_data.py``), then runs
each tool in its own fresh Python process, once (load both JSON files, evaluate, accumulate,
summarize, print): wall seconds of the whole process, its CPU seconds (user + system; steadier than
wall time on a shared machine) and its peak memory (its own ``VmHWM``). A sharded run also gets
the peak of its whole process tree (driver, Ray's daemons and workers; RSS summed every 0.2 s, so
shared pages count once per process). Prints one row per tool and ``ratio = ours / hotcoco`` for
time and memory. Tools that are not installed are listed as such. Exits 1 when visionflow's stats
differ from hotcoco's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.coco_data import synthetic_coco

#: the process's own peak RSS (kB). Not wait4's maxrss: a child's counts the parent's RSS at the fork.
PRINT_PEAK = "print('PEAK', next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))"
PRINT_STATS = (
    "import json, sys; print('STATS', json.dumps([float(v) for v in {stats}])); " + PRINT_PEAK
)
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
    "visionflow eval coco": (
        "visionflow",
        "import sys; from visionflow.cli import main; "
        "code = main(['eval', 'coco', '--gt', sys.argv[1], '--dt', sys.argv[2], "
        "'--json', sys.argv[3]]); " + PRINT_PEAK + "; sys.exit(code)",
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--categories", type=int, default=80)
    parser.add_argument("--dets-per-image", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip", nargs="*", default=[], help="tools to leave out (e.g. pycocotools)"
    )
    parser.add_argument(
        "--shards",
        type=int,
        nargs="*",
        default=[],
        help="also run `visionflow eval coco --shards N` for each N (embedded Ray)",
    )
    return parser.parse_args(argv)


def write_inputs(folder: Path, args: argparse.Namespace) -> tuple[Path, Path, str]:
    gt, dt = synthetic_coco(
        seed=args.seed,
        images=args.images,
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


def run_process(program: str, *argv: str) -> tuple[float, float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS in MB, peak RSS of the process tree in MB, stdout) of
    ``python -c program argv...``."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", program, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    tree_peak = [0]
    sampler = threading.Thread(target=_sample_tree_rss, args=(process.pid, tree_peak), daemon=True)
    sampler.start()
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{program[:60]}... exited with {os.waitstatus_to_exitcode(status)}")
    peak_kb = int(output.rsplit("PEAK ", 1)[1].split()[0])
    return seconds, usage.ru_utime + usage.ru_stime, peak_kb / 1024, tree_peak[0] / 1024, output


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
    with tempfile.TemporaryDirectory(prefix="coco_bench_") as folder:
        gt_path, dt_path, description = write_inputs(Path(folder), args)
        out = Path(folder) / "out.json"
        print(f"input: {description}")
        rows, stats = {}, {}
        for name, (module, program) in TOOLS.items():
            if name in args.skip or not installed(module):
                print(f"{name:<30} {'skipped' if name in args.skip else 'not installed'}")
                continue
            seconds, cpu, megabytes, _, output = run_process(
                program, str(gt_path), str(dt_path), str(out)
            )
            rows[name] = (seconds, cpu, megabytes)
            stats[name] = (
                orjson.loads(out.read_bytes())["stats"]
                if name.startswith("visionflow")
                else orjson.loads(output.split("STATS ", 1)[1].splitlines()[0])
            )
            print(f"{name:<30} {seconds:8.2f} s wall {cpu:8.2f} s CPU {megabytes:7.0f} MB peak")
        for shards in args.shards:
            program = TOOLS["visionflow eval coco"][1].replace(
                "sys.argv[3]]", f"sys.argv[3], '--shards', '{shards}']"
            )
            seconds, cpu, megabytes, tree, _ = run_process(
                program, str(gt_path), str(dt_path), str(out)
            )
            print(
                f"{f'visionflow --shards {shards}':<30} {seconds:8.2f} s wall {cpu:8.2f} s CPU (driver) "
                f"{megabytes:7.0f} MB peak (driver), {tree:.0f} MB peak (process tree)"
            )
            report = orjson.loads(out.read_bytes())
            stats[f"shards {shards}"] = report["stats"]
            print(
                f"{'':<30} driver's timing: "
                + ", ".join(f"{k} {v:.2f}" for k, v in report["timing"].items())
            )
    if "visionflow eval coco" in rows and "hotcoco" in rows:
        (wall, cpu, memory), (wall_ref, cpu_ref, memory_ref) = (
            rows["visionflow eval coco"],
            rows["hotcoco"],
        )
        print(
            f"ratio = ours / hotcoco: wall time {wall / wall_ref:.3f}, CPU time {cpu / cpu_ref:.3f}, "
            f"peak memory {memory / memory_ref:.3f}"
        )
    reference = stats.get("hotcoco")
    for name, values in stats.items() if reference else ():
        print(
            f"max |stats - hotcoco's| {name}: {max(abs(a - b) for a, b in zip(values, reference)):.1e}"
        )
    return (
        0
        if reference is None
        or all(stats[n] == reference for n in stats if n.startswith(("visionflow", "shards")))
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
