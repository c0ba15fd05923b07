"""Box results decoded fast: a piece at a time, and a big file's spans by several processes at once.

    with BoxResultsDecoding("detections.json", processes=4) as started:   # children start now
        gt = load_ground_truth("instances_val2017.json", "bbox")          # meanwhile, here
        columns = started.columns()      # (image_ids [N], category_ids [N], table [N, 7]) or None

The records are decoded by msgspec a piece at a time (about 128 KiB of JSON, some 1,400 records,
cut between two records: :func:`record_pieces`) into a record type that admits only
well-formed box results (every field present, ``bbox`` exactly 4 numbers), and each piece becomes
rows of the columns while its records are still in the CPU's cache, which takes a quarter less
time than decoding the whole file first. A file of at least ``SPAN_BYTES`` per process is cut
into spans between records ((:func:`record_spans`)); every span but the first is decoded by a
child forked when the decoding starts (:mod:`visionflow.evaluation.forked`), into columns shared
with this process, and the first span by this process when it asks for the columns. Where a
piece does not decode exactly, ``columns()`` is None and the caller decodes the whole file with
lenient types, whose checks name the first bad record.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from visionflow.evaluation.coco_input import Box
from visionflow.evaluation.coco_io import JSON_TEXT, contents_of, decode_exact, gc_paused
from visionflow.evaluation.forked import Forked, shared_empty

__all__ = [
    "BoxDetection",
    "BoxResultsDecoding",
    "box_columns",
    "engine_table",
    "record_pieces",
    "record_spans",
    "results_source",
]

PIECE_BYTES = 1 << 17  # record_pieces: decoded records of this much JSON stay in a core's cache
JSON_SPACE = b" \t\n\r"
#: between two objects of an array: the first's closing brace, a comma, the next's opening brace
OBJECT_BOUNDARY = re.compile(rb"\}[ \t\n\r]*,[ \t\n\r]*\{")

SPAN_BYTES = 8 << 20  # the least JSON worth a process of its own (some 80k box results)
#: the shortest box result the exact record type admits, with the comma after it
SHORTEST_BOX_RESULT = len(b'{"image_id":0,"category_id":0,"score":0,"bbox":[0,0,0,0]},')


class BoxDetection(msgspec.Struct, gc=False):
    """A bbox result as the fast path takes it."""

    image_id: int
    category_id: int
    score: float
    bbox: Box


class BoxResultsDecoding:
    """The box results at ``results`` (a JSON file's path, or a list of result dicts) being
    decoded into columns: by ``processes`` processes for a big file, whose children start here,
    this process's span shorter by ``first_bytes`` (what it reads before it asks for the
    columns). Use it in a ``with`` block: leaving it stops any child still running."""

    def __init__(
        self,
        results: list | str | Path,
        processes: int,
        source: str | None = None,
        first_bytes: int = 0,
    ):
        self.source = results_source(results, source)
        self._data = contents_of(results, "results")
        text = isinstance(self._data, JSON_TEXT)
        count = min(processes, len(self._data) // SPAN_BYTES) if text else 1
        spans = (
            record_spans(self._data, _shares(len(self._data), count, first_bytes))
            if count > 1
            else []
        )
        self._spans = spans or [None]  # not an array: one piece, which the lenient path names
        self._room = [_room(self._data, span) for span in self._spans]  # rows a span may fill
        self._starts = [sum(self._room[:index]) for index in range(len(self._spans))]
        rows = sum(self._room)
        layout = [(rows, np.int64), (rows, np.int64), ((rows, 7), np.float64)]
        self._columns = (
            shared_empty(layout)
            if len(self._spans) > 1
            else [np.empty(shape, dtype) for shape, dtype in layout]
        )
        with gc_paused():  # the children decode without the cyclic collector, as this process
            self._children = Forked(self._fill, range(1, len(self._spans)))

    def columns(self) -> tuple[np.ndarray, ...] | None:
        """(image_ids [N], category_ids [N], engine table [N, 7]) of every record in file order,
        or None where a piece does not decode exactly."""
        filled = [self._fill(0), *self._children.results()]
        return None if None in filled else _compacted(self._columns, self._starts, filled)

    def text(self) -> Any:
        """The file's JSON text (or the list of result dicts), for the lenient decoding."""
        return self._data

    def __enter__(self) -> BoxResultsDecoding:
        return self

    def __exit__(self, *exception: object) -> None:
        self._children.__exit__(*exception)
        del self._data, self._columns  # the mapped file, and the columns the results don't use

    def _fill(self, index: int) -> int | None:
        """Decode span ``index`` into its rows of the columns: how many, or None."""
        start, room = self._starts[index], self._room[index]
        position = start
        for piece in record_pieces(self._data, span=self._spans[index]):
            records = decode_exact(piece, list[BoxDetection])
            if records is None or position + len(records) > start + room:
                return None
            try:
                parts = box_columns(records)
            except OverflowError:  # an id beyond int64
                return None
            for column, part in zip(self._columns, parts):
                column[position : position + len(records)] = part
            position += len(records)
        return position - start


def results_source(results: Any, source: str | None = None) -> str:
    """What errors call ``results``: ``source`` if given, else the file's path, or
    ``<results>`` for a list of result dicts."""
    return source or ("<results>" if isinstance(results, list) else str(results))


def _shares(size: int, processes: int, first_bytes: int) -> list[float]:
    """The parts of ``size`` bytes of JSON that ``processes`` processes decode so that all finish
    together, where this one (the first) first decodes ``first_bytes`` of other JSON (the
    ground truth: about as fast per byte)."""
    each = (size + first_bytes) / processes
    first = max(each - first_bytes, each / 4)
    return [first, *[(size - first) / (processes - 1)] * (processes - 1)]


def _room(data: Any, span: tuple[int, int] | None) -> int:
    """The most box results ``span`` of ``data`` (None: all of it) can hold; a list: its length."""
    if not isinstance(data, JSON_TEXT):
        return len(data)
    start, end = span or (0, len(data))
    return (end - start) // SHORTEST_BOX_RESULT + 1


def _compacted(
    columns: list[np.ndarray], starts: list[int], counts: list[int]
) -> tuple[np.ndarray, ...]:
    """The filled rows of ``columns`` (``counts[i]`` from ``starts[i]``), moved together in order,
    a block at a time (no block overlaps its destination, so nothing is copied aside)."""
    total = 0
    for start, count in zip(starts, counts):
        shift = start - total
        for block in range(0, count if shift else 0, max(shift, 1)):
            rows = min(shift, count - block)
            for column in columns:
                column[total + block : total + block + rows] = column[start + block :][:rows]
        total += count
    return tuple(column[:total] for column in columns)


def box_columns(records: list[BoxDetection]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image_ids [n], category_ids [n], engine table [n, 7]) of exactly decoded box results."""
    count = len(records)
    image_ids = np.fromiter(map(attrgetter("image_id"), records), np.int64, count)
    category_ids = np.fromiter(map(attrgetter("category_id"), records), np.int64, count)
    scores = np.fromiter(map(attrgetter("score"), records), np.float64, count)
    boxes = np.fromiter(
        chain.from_iterable(map(attrgetter("bbox"), records)), np.float64, 4 * count
    ).reshape(-1, 4)
    return image_ids, category_ids, engine_table(image_ids, boxes, scores, category_ids)


def engine_table(
    image_ids: np.ndarray, boxes: np.ndarray, scores: np.ndarray, category_ids: np.ndarray
) -> np.ndarray:
    """[N, 7] float64 (image_id, x, y, w, h, score, category_id), the table
    ``hotcoco.COCO.load_res`` takes, from the columns [N] and ``boxes`` [N, 4]."""
    table = np.empty((len(scores), 7))
    table[:, 0], table[:, 1:5], table[:, 5], table[:, 6] = image_ids, boxes, scores, category_ids
    return table


# ------------------------------------------------------------- cutting a JSON array between records


def record_pieces(
    value: Any, size: int = PIECE_BYTES, span: tuple[int, int] | None = None
) -> Iterator[Any]:
    """A JSON array of records (JSON text, or a parsed list) as consecutive JSON arrays of about
    ``size`` bytes each (a list: as many records), to decode one after another; anything else
    whole. ``span``: only the records between these two offsets of the text (one of
    :func:`record_spans`).

    JSON text is cut at the first ``}``, ``,``, ``{`` after every ``size`` bytes. A cut that falls
    inside a string or inside a record leaves a piece that is not a JSON array of records (an
    unterminated string, unclosed brackets), so either every piece decodes, and the pieces then
    hold the array's records in order, or one fails to, and the caller decodes ``value`` whole.
    Each piece of text is a view of one buffer that the next piece overwrites (no allocation
    per piece): decode it before asking for the next.
    """
    if isinstance(value, list):
        step = max(1, size // 100)  # ~100 bytes of JSON per box result
        yield from (value[start : start + step] for start in range(0, max(len(value), 1), step))
        return
    bounds = span or (_array_bounds(value) if isinstance(value, JSON_TEXT) else None)
    if bounds is None:
        yield value
        return
    start, end = bounds  # the array's content, between its brackets
    view, piece = memoryview(value), bytearray()
    while True:
        cut = OBJECT_BOUNDARY.search(value, start + size, end) if start + size < end else None
        stop = end if cut is None else cut.start() + 1
        length = stop - start + 2  # with its brackets
        if length > len(piece):
            piece = bytearray(max(length, 2 * size))
        piece[0], piece[1 : length - 1], piece[length - 1] = 0x5B, view[start:stop], 0x5D
        yield memoryview(piece)[:length]
        if cut is None:
            return
        start = cut.end() - 1


def record_spans(value: Any, shares: Sequence[float]) -> list[tuple[int, int]]:
    """(start, end) offsets of consecutive runs of the records of the JSON array ``value`` (JSON
    text), one for each of ``shares`` and about that part of the text long, cut as
    :func:`record_pieces` cuts (so either every span's pieces decode, or one fails to); fewer
    where a record is longer than a span; [] where ``value`` is not an array."""
    bounds = _array_bounds(value) if isinstance(value, JSON_TEXT) else None
    if bounds is None:
        return []
    start, end = bounds
    spans, total, taken = [], sum(shares), 0.0
    for share in shares[:-1]:
        taken += share
        target = bounds[0] + int((end - bounds[0]) * taken / total)
        cut = OBJECT_BOUNDARY.search(value, max(start, target), end)
        if cut is None:
            break
        spans.append((start, cut.start() + 1))
        start = cut.end() - 1
    return [*spans, (start, end)]


def _array_bounds(data: bytes) -> tuple[int, int] | None:
    """(start, end) of what lies between the brackets of JSON ``data`` that is an array."""
    first, last = 0, len(data)
    while first < last and data[first] in JSON_SPACE:
        first += 1
    while last > first and data[last - 1] in JSON_SPACE:
        last -= 1
    if data[first : first + 1] != b"[" or last - first < 2 or data[last - 1] != ord("]"):
        return None
    return first + 1, last - 1
