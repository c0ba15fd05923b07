"""COCO bbox evaluation end to end from JSON files: `visionflow eval coco` against hotcoco and the others.

    python benchmarks/coco_eval.py                      # val2017-sized: 5k images, ~35k GT, 500k dets
    python benchmarks/coco_eval.py --images 100         # small inputs: process start-up dominates
    python benchmarks/coco_eval.py --images 80000 --categories 365 --dets-per-image 15 --shards 1 2
                                                        # Objects365-sized (~1.2M detections)

Writes a seeded synthetic ground truth and results file (``benchmarks/coco_data.py``), then runs
each tool in its own fresh Python process, once (load both JSON files, evaluate, accumulate,
summarize, print), timing the whole process and reading its peak memory (``wait4``'s maxrss).
Prints one row per tool and ``ratio = ours / hotcoco`` for time and memory. Tools that are not
installed are listed as such. Exits 1 when visionflow's stats differ from hotcoco's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.coco_data import synthetic_coco  # noqa: E402

PRINT_STATS = "import json, sys; print('STATS', json.dumps([float(v) for v in {stats}]))"
TOOLS = {  # name: (module that must import, program run as `python -c` with argv gt, dt)
    "pycocotools": ("pycocotools", "from pycocotools.coco import COCO; from pycocotools.cocoeval import COCOeval; "
                    "import sys; g = COCO(sys.argv[1]); e = COCOeval(g, g.loadRes(sys.argv[2]), 'bbox'); "
                    "e.evaluate(); e.accumulate(); e.summarize(); " + PRINT_STATS.format(stats="e.stats")),
    "faster-coco-eval": ("faster_coco_eval", "from faster_coco_eval import COCO, COCOeval_faster; import sys; "
                         "g = COCO(sys.argv[1]); e = COCOeval_faster(g, g.loadRes(sys.argv[2]), 'bbox'); "
                         "e.evaluate(); e.accumulate(); e.summarize(); " + PRINT_STATS.format(stats="e.stats")),
    "hotcoco": ("hotcoco", "from hotcoco import COCO, COCOeval; import sys; g = COCO(sys.argv[1]); "
                "e = COCOeval(g, g.load_res(sys.argv[2]), 'bbox'); e.evaluate(); e.accumulate(); e.summarize(); "
                + PRINT_STATS.format(stats="e.stats")),
    "visionflow eval coco": ("visionflow", "import sys; from visionflow.cli import main; "
                             "sys.exit(main(['eval', 'coco', '--gt', sys.argv[1], '--dt', sys.argv[2], "
                             "'--json', sys.argv[3]]))"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--categories", type=int, default=80)
    parser.add_argument("--dets-per-image", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], help="tools to leave out (e.g. pycocotools)")
    parser.add_argument("--shards", type=int, nargs="*", default=[],
                        help="also run `visionflow eval coco --shards N` for each N (embedded Ray)")
    return parser.parse_args(argv)


def write_inputs(folder: Path, args: argparse.Namespace) -> tuple[Path, Path, str]:
    gt, dt = synthetic_coco(seed=args.seed, images=args.images, categories=args.categories,
                            dets_per_image=args.dets_per_image)
    gt_path, dt_path = folder / "gt.json", folder / "dt.json"
    gt_path.write_bytes(orjson.dumps(gt))
    dt_path.write_bytes(orjson.dumps(dt))
    megabytes = (gt_path.stat().st_size + dt_path.stat().st_size) / 1e6
    return gt_path, dt_path, (f"{len(gt['images'])} images, {len(gt['annotations'])} GT, {len(dt)} detections, "
                              f"{len(gt['categories'])} categories, {megabytes:.1f} MB of JSON")


def run_process(program: str, *argv: str) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of ``python -c program argv...``."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", program, *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{program[:60]}... exited with {process.returncode}")
    return seconds, usage.ru_maxrss / 1024, output


def installed(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="coco_bench_") as folder:
        gt_path, dt_path, description = write_inputs(Path(folder), args)
        out = Path(folder) / "out.json"
        print(f"input: {description}")
        rows, stats = {}, {}
        for name, (module, program) in TOOLS.items():
            if name in args.skip or not installed(module):
                print(f"{name:<28} {'skipped' if name in args.skip else 'not installed'}")
                continue
            seconds, megabytes, output = run_process(program, str(gt_path), str(dt_path), str(out))
            rows[name] = (seconds, megabytes)
            stats[name] = orjson.loads(out.read_bytes())["stats"] if name.startswith("visionflow") else \
                orjson.loads(output.split("STATS ", 1)[1])
            print(f"{name:<28} {seconds:8.2f} s {megabytes:9.0f} MB peak")
        for shards in args.shards:
            program = TOOLS["visionflow eval coco"][1].replace("sys.argv[3]]", f"sys.argv[3], '--shards', '{shards}']")
            seconds, megabytes, _ = run_process(program, str(gt_path), str(dt_path), str(out))
            print(f"{f'visionflow --shards {shards}':<28} {seconds:8.2f} s {megabytes:9.0f} MB peak (driver)")
            stats[f"shards {shards}"] = orjson.loads(out.read_bytes())["stats"]
    ours, reference = rows["visionflow eval coco"], rows["hotcoco"]
    print(f"ratio = ours / hotcoco: time {ours[0] / reference[0]:.3f}, peak memory {ours[1] / reference[1]:.3f}")
    for name, values in stats.items():
        print(f"max |stats - hotcoco's| {name}: {max(abs(a - b) for a, b in zip(values, stats['hotcoco'])):.1e}")
    return 0 if all(stats[n] == stats["hotcoco"] for n in stats if n.startswith(("visionflow", "shards"))) else 1


if __name__ == "__main__":
    sys.exit(main())
