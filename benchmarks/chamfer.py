"""Chamfer distance: visionflow.ops.chamfer_distance against dense and chunked torch.cdist, a bare
KD-tree query of the same points (the floor), and PyTorch3D where it installs; one run.

    python benchmarks/chamfer.py                         # N = M = 1k, 10k, 100k, B = 1
    python benchmarks/chamfer.py --sizes 1000000 --skip-chunked
    python benchmarks/chamfer.py --device cuda --batch 8 --sizes 8000 100000
    python benchmarks/chamfer.py --batch 4 --ragged --sizes 100000   # clouds of N/2 .. N points

Each method computes the point-mean squared-L2 Chamfer distance of two random clouds in both
directions (ours and PyTorch3D's with the backward pass too); time is the best of ``--repeats``,
memory the peak above the start (CUDA: the allocator's peak; CPU: the process's resident set,
sampled every 2 ms). Prints ``ratio = ours / reference`` for each reference and checks that every
method's value agrees with ours (relative 1e-4). ``--ragged``: cloud ``b`` of the batch has
``N (1 - b / (2 B))`` points (padded to N; lengths passed), compared with the floor only.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

from visionflow.ops import chamfer_distance
from visionflow.ops.nearest import kdtree_query

CHUNK_ROWS = 4096


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ragged", action="store_true", help="clouds of N/2 .. N points")
    parser.add_argument(
        "--dense-limit",
        type=int,
        default=20000,
        help="largest N for the dense cdist (it needs B*N*M*4 bytes)",
    )
    parser.add_argument(
        "--skip-chunked",
        action="store_true",
        help="skip chunked cdist (143 s at N=100k on 2 cores)",
    )
    return parser.parse_args(argv)


class PeakMemory:
    """Peak memory above the level at entry, in bytes (see the module docstring)."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            self.start, self.running = _rss(), True
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, _rss() - self.start)
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.start
        else:
            self.running = False
            self.thread.join()


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def measure(
    function: Callable[[], float], device: torch.device, repeats: int
) -> tuple[float, float, float]:
    """``(best seconds, peak bytes, value)`` of ``function`` over ``repeats`` runs."""
    best, peak, value = float("inf"), 0, float("nan")
    for _ in range(repeats):
        with PeakMemory(device) as memory:
            start = time.perf_counter()
            value = function()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        peak = max(peak, memory.peak)
    return best, peak, value


def ours(x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None = None) -> float:
    x = x.detach().requires_grad_()
    loss, _ = chamfer_distance(x, y, lengths, lengths)
    loss.backward()
    return float(loss.detach())


def dense_cdist(x: torch.Tensor, y: torch.Tensor) -> float:
    distances = torch.cdist(x, y).square()  # [B, N, M]
    return float((distances.amin(2).mean(1) + distances.amin(1).mean(1)).mean())


def chunked_cdist(x: torch.Tensor, y: torch.Tensor) -> float:
    def one_way(a, b):
        return (
            torch.cat(
                [
                    torch.cdist(a[:, i : i + CHUNK_ROWS], b).amin(2)
                    for i in range(0, a.shape[1], CHUNK_ROWS)
                ],
                1,
            )
            .square()
            .mean(1)
        )

    return float((one_way(x, y) + one_way(y, x)).mean())


def kdtree_floor(x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None = None) -> float:
    """The nearest-neighbour queries alone (what our CPU path is built on), both directions."""
    total = 0.0
    counts = [x.shape[1]] * len(x) if lengths is None else lengths.tolist()
    for a, b, count in zip(x.numpy(), y.numpy(), counts):
        for queries, points in ((a[:count], b[:count]), (b[:count], a[:count])):
            nearest = points[kdtree_query(points, queries, 2)]
            total += float(np.square(queries - nearest).sum(1).mean())
    return total / len(x)


def pytorch3d_chamfer() -> Callable | None:
    try:
        from pytorch3d.loss import chamfer_distance as reference
    except ImportError:
        return None

    def run(x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None = None) -> float:
        x = x.detach().requires_grad_()
        loss, _ = reference(x, y, lengths, lengths)
        loss.backward()
        return float(loss.detach())

    return run


def ragged_lengths(size: int, batch: int, device: torch.device) -> torch.Tensor:
    """int64 ``[B]``: ``size (1 - b / (2 B))`` points in cloud ``b``."""
    return torch.tensor([size - size * b // (2 * batch) for b in range(batch)], device=device)


def methods(size: int, args: argparse.Namespace, device: torch.device) -> dict[str, Callable]:
    chosen: dict[str, Callable] = {"ours": ours}
    if device.type == "cpu":
        chosen["kdtree floor"] = kdtree_floor
    if (reference := pytorch3d_chamfer()) is not None:
        chosen["pytorch3d"] = reference
    if args.ragged:  # the cdist baselines take no lengths
        return chosen
    if size <= args.dense_limit:
        chosen["dense cdist"] = dense_cdist
    if not args.skip_chunked:
        chosen["chunked cdist"] = chunked_cdist
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    print(
        f"B={args.batch}, device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"{'N = M':>9}  {'method':<14} {'seconds':>9} {'peak MiB':>9}  ratio = ours / it")
    status = 0
    for size in args.sizes:
        generator = torch.Generator().manual_seed(size)
        x, y = (torch.rand(args.batch, size, 3, generator=generator).to(device) for _ in "xy")
        lengths = ragged_lengths(size, args.batch, device) if args.ragged else None
        inputs = (x, y) if lengths is None else (x, y, lengths)
        results = {
            name: measure(lambda f=function, inputs=inputs: f(*inputs), device, args.repeats)
            for name, function in methods(size, args, device).items()
        }
        mine = results["ours"]
        for name, (seconds, peak, value) in results.items():
            ratio = "" if name == "ours" else f"time {mine[0] / seconds:7.2f}"
            if name != "ours" and peak >= 2**20:
                ratio += f"   memory {mine[1] / peak:.2f}"
            print(f"{size:>9}  {name:<14} {seconds:9.3f} {peak / 2**20:9.1f}  {ratio}")
            if abs(value - mine[2]) > 1e-4 * abs(mine[2]):
                print(f"  MISMATCH: {name} gives {value!r}, ours {mine[2]!r}")
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
