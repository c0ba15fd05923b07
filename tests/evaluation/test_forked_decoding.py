"""Box results decoded by several processes at once (``coco_box_results``, ``forked``): the same
columns as one process, bad records still named, children never left behind; and the
``visionflow`` program's own exit for an evaluation (``cli.console``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from benchmarks.coco_data import synthetic_coco
from visionflow import cli
from visionflow.errors import DataError
from visionflow.evaluation import coco_box_results, forked
from visionflow.evaluation.coco import evaluate_coco
from visionflow.evaluation.coco_box_results import BoxResultsDecoding, _compacted, record_spans
from visionflow.evaluation.coco_input import load_ground_truth
from visionflow.evaluation.coco_io import mapped_file
from visionflow.evaluation.coco_results import load_results
from visionflow.evaluation.forked import Forked, shared_empty

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    gt, dt = synthetic_coco(seed=5, images=60, categories=7, dets_per_image=25)
    folder = tmp_path_factory.mktemp("forked")
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "dt.json").write_text(json.dumps(dt))
    return folder / "gt.json", folder / "dt.json", dt


@pytest.fixture
def small_spans(monkeypatch):
    """Spans of 16 KiB, so that a small file is decoded by several processes."""
    monkeypatch.setattr(coco_box_results, "SPAN_BYTES", 1 << 14)


def test_shared_arrays_are_written_by_children_and_results_come_back():
    (numbers,) = shared_empty([(4, np.int64)])

    def fill(index: int) -> int | None:
        numbers[index] = 10 * index
        return None if index == 3 else index

    with Forked(fill, [1, 2, 3]) as children:
        assert [fill(0), *children.results()] == [0, 1, 2, None]
    assert numbers.tolist() == [0, 10, 20, 30]


def test_a_failing_child_gives_none_and_an_interrupted_parent_leaves_no_child():
    def fail(index: int) -> int:
        raise RuntimeError(index)

    assert Forked(fail, [1]).results() == [None]
    started = Forked(lambda _: threading.Event().wait(60) and 0, [1, 2])
    pids = [pid for pid, _ in started._children]
    with started:
        pass  # leaves the block before asking for the results, as an exception would
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_items_whose_fork_fails_run_here_in_order(monkeypatch):
    (seen,) = shared_empty([(4, np.int64)])
    forks, fork = [], os.fork

    def fork_twice() -> int:
        if len(forks) == 2:
            raise OSError(11, "Resource temporarily unavailable")
        forks.append(None)
        return fork()

    def mark(index: int) -> int:
        seen[index] = os.getpid()
        return index

    monkeypatch.setattr(os, "fork", fork_twice)
    with Forked(mark, [0, 1, 2, 3]) as children:
        assert children.results() == [0, 1, 2, 3]
    assert seen[2] == seen[3] == os.getpid() and os.getpid() not in seen[:2]


@pytest.mark.parametrize("shares", [[1, 1], [1, 3, 2], [0.1, 1, 1, 1]])
def test_record_spans_cover_the_records_and_cut_between_two(files, shares):
    _, dt_path, dt = files
    data = dt_path.read_bytes()
    spans = record_spans(data, shares)
    assert len(spans) == len(shares)
    assert spans[0][0] == 1 and spans[-1][1] == len(data) - 1
    pieces = [json.loads(b"[" + data[start:end] + b"]") for start, end in spans]
    assert [record for piece in pieces for record in piece] == dt


def test_moving_filled_rows_together():
    column = np.arange(20)
    (moved,) = _compacted([column], [0, 6, 15], [2, 4, 5])
    assert moved.tolist() == [0, 1, 6, 7, 8, 9, 15, 16, 17, 18, 19]


@pytest.mark.usefixtures("small_spans")
@pytest.mark.parametrize("processes", [2, 5])
def test_several_processes_give_the_columns_of_one(files, processes):
    gt_path, dt_path, _ = files
    gt = load_ground_truth(gt_path, "bbox")
    alone = load_results(dt_path, gt)
    with BoxResultsDecoding(dt_path, processes) as started:
        assert len(started._spans) == processes
        together = load_results(started, gt)
    np.testing.assert_array_equal(together.columns, alone.columns)
    np.testing.assert_array_equal(together.image_ids, alone.image_ids)
    one = evaluate_coco(gt_path, dt_path).stats
    np.testing.assert_array_equal(evaluate_coco(gt_path, dt_path, processes=processes).stats, one)


@pytest.mark.usefixtures("small_spans")
def test_a_bad_record_in_a_childs_span_is_named(files, tmp_path):
    gt_path, _, dt = files
    bad = [dict(record) for record in dt]
    bad[-3]["bbox"] = [1.0, 2.0, 3.0]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match=f"detection #{len(bad) - 3} .*'bbox' must be"):
        evaluate_coco(gt_path, path, processes=3)


@pytest.mark.usefixtures("small_spans")
def test_a_big_file_that_is_not_an_array_is_named(files, tmp_path):
    gt_path, _, dt = files
    path = tmp_path / "object.json"
    path.write_text(json.dumps({"detections": dt}))
    with pytest.raises(DataError, match="object.json: expected 'array', got 'object'"):
        evaluate_coco(gt_path, path, processes=3)


@pytest.mark.usefixtures("small_spans")
def test_a_ground_truth_that_fails_stops_the_children(files, tmp_path, monkeypatch):
    _, dt_path, _ = files
    started, fork = [], forked._start

    def start(*arguments):
        started.append(fork(*arguments))
        return started[-1]

    monkeypatch.setattr(forked, "_start", start)
    with pytest.raises(DataError, match="missing.json: no such file"):
        evaluate_coco(tmp_path / "missing.json", dt_path, processes=3)
    assert len(started) == 2
    for pid, _ in started:
        with pytest.raises(ChildProcessError):  # killed and reaped
            os.waitpid(pid, os.WNOHANG)


def test_a_file_that_cannot_be_mapped_is_read(tmp_path):
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b"[]"))
    writer.start()
    assert mapped_file(fifo, "results") == b"[]"
    writer.join()
    (tmp_path / "blank.json").write_bytes(b" \n\t ")
    with pytest.raises(DataError, match="blank.json: the file is empty"):
        mapped_file(tmp_path / "blank.json", "results")
    (tmp_path / "empty.json").write_bytes(b"")
    with pytest.raises(DataError, match="empty.json: the file is empty"):
        mapped_file(tmp_path / "empty.json", "results")


def program(*argv: str) -> subprocess.CompletedProcess:
    """``visionflow ARGV`` as the installed program runs it (``cli.console``), output piped."""
    return subprocess.run(
        [sys.executable, "-c", "from visionflow.cli import console; console()", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_the_program_flushes_everything_before_it_exits_at_once(files, tmp_path):
    gt_path, dt_path, _ = files
    out = tmp_path / "out.json"
    done = program("eval", "coco", "--gt", str(gt_path), "--dt", str(dt_path), "--json", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len([line for line in lines if "Average" in line]) == 12
    assert lines[-2] == f"wrote {out}" and lines[-1].startswith("evaluated in")
    assert json.loads(out.read_text())["stats"] == evaluate_coco(gt_path, dt_path).stats.tolist()
    failed = program("eval", "coco", "--gt", str(tmp_path / "none.json"), "--dt", str(dt_path))
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines()[0].endswith("none.json: no such file")


def test_only_an_evaluation_in_this_process_exits_at_once(monkeypatch, files):
    gt_path, dt_path, _ = files
    ended = []
    monkeypatch.setattr(cli, "exit_at_once", ended.append)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setattr(sys, "argv", ["visionflow", "eval", "coco", "--gt", str(gt_path)])
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--dt", str(dt_path)])
    cli.console()
    assert ended == [0] and os.environ["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    monkeypatch.setattr(sys, "argv", ["visionflow", "list", "stages"])
    with pytest.raises(SystemExit) as exited:
        cli.console()
    assert exited.value.code == 0 and ended == [0] and "OPENBLAS_NUM_THREADS" not in os.environ
