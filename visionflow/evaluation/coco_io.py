"""Reading COCO JSON and turning lists of JSON records into checked numpy columns.

Every problem becomes a ``DataError`` whose one-line message names the file and the record
(``gt.json: annotation #12 (id 907, image_id 42): 'bbox' has a negative width``) and whose hint
says what a valid record looks like. The fast path converts whole columns at once; only when a
column fails to convert do we walk the records to find the first bad one.

msgspec decodes the records (``decode_exact``: None where they do not fit the exact types;
``decode_or_fail``: a ``DataError`` naming the record), and ``record_column`` takes one field of
them as a column.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from visionflow.errors import DataError

#: what msgspec decodes from: JSON text as bytes, a memory-mapped file or a view of either
JSON_TEXT = (bytes, bytearray, memoryview, mmap.mmap)
ONLY_SPACE = re.compile(rb"[ \t\n\r]*")
NUMERIC_KINDS = "biuf"  # numpy dtype kinds that JSON numbers (and booleans) convert to
DENSE_LOOKUP_SPAN = 1 << 22  # index_of: id ranges up to this use a lookup table (at most 32 MB)
#: the largest id: hotcoco takes box results as a float64 table (``load_res``), whose image and
#: category ids are exact only up to 2**53, and it refuses negative ids
ID_LIMIT = 2**53
ID_HINT = (
    "ids are integers from 0 to 2**53 = 9007199254740992: the engine reads image and category "
    "ids as float64 and refuses negative ones; renumber the dataset"
)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while JSON records are parsed, converted and dropped.

    Parsing a results file builds millions of small dicts and lists, none of them in a cycle; with
    the collector running, its collections triple the parse time. Drop the records inside the
    block: whatever is still alive when it ends gets scanned by the next collection.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_json(path: str | Path, what: str) -> Any:
    """Parse the JSON file at ``path`` (``what``: 'ground truth' or 'results', for the hint).

    Call it inside ``gc_paused()``."""
    import orjson

    try:
        return orjson.loads(read_file(Path(path), what))
    except orjson.JSONDecodeError as error:
        raise DataError(
            f"{path}: invalid JSON ({error})", hint=f"expected a COCO {what} JSON file"
        ) from None


def read_file(path: Path, what: str) -> bytes:
    """The bytes of a COCO ``what`` file; a missing, unreadable or empty file is a DataError."""
    with _opened(path, what) as file:
        return _not_empty(file.read(), path, what)


def mapped_file(path: Path, what: str) -> mmap.mmap | bytes:
    """A COCO ``what`` file memory-mapped read-only (a pipe or other file that cannot be mapped:
    its bytes); a missing, unreadable or empty file is a DataError. Mapped, its pages are the
    page cache's: reading a 40 MB results file into bytes would copy it and take some 10k page
    faults."""
    with _opened(path, what) as file:
        try:
            data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # not a regular file, or an empty one
            data = file.read()
        return _not_empty(data, path, what)


@contextlib.contextmanager
def _opened(path: Path, what: str) -> Iterator[Any]:
    """``path`` open for binary reading; OSErrors, opening or reading, as one-line DataErrors."""
    try:
        with open(path, "rb") as file:
            yield file
    except FileNotFoundError:
        raise DataError(
            f"{path}: no such file", hint=f"pass the path of a COCO {what} JSON file"
        ) from None
    except OSError as error:
        raise DataError(
            f"{path}: cannot read ({error.strerror})", hint="check the path and its permissions"
        ) from None


def _not_empty(data: Any, path: Path, what: str) -> Any:
    if ONLY_SPACE.fullmatch(data):
        raise DataError(f"{path}: the file is empty", hint=f"expected a COCO {what} JSON file")
    return data


# ------------------------------------------------------------------- decoding records with msgspec


def contents_of(value: Any, what: str) -> Any:
    """The JSON text of the file at ``value`` (a path; memory-mapped), else ``value`` itself
    (parsed JSON data)."""
    return mapped_file(Path(value), what) if isinstance(value, (str, Path)) else value


def decode_exact(value: Any, kind: Any) -> Any:
    """``value`` (JSON text or parsed data) as ``kind``, or None where it does not fit: then the
    lenient decoding finds and names the problem."""
    try:
        return _decoded(value, kind)
    except msgspec.MsgspecError:
        return None


def decode_or_fail(value: Any, kind: Any, source: str, hint: str) -> Any:
    """``value`` (JSON text or parsed data) as ``kind``; errors name the record."""
    try:
        return _decoded(value, kind)
    except msgspec.ValidationError as error:
        raise DataError(f"{source}: {_readable(str(error))}", hint=hint) from None
    except msgspec.DecodeError as error:
        raise DataError(f"{source}: invalid JSON ({error})", hint=hint) from None


_RECORD_KINDS = {"annotations": "annotation", "images": "image", "categories": "category"}


def _readable(message: str) -> str:
    """msgspec's ``Expected `int`, got `str` - at `$.annotations[3].image_id``` as
    ``annotation #3: 'image_id': expected int, got str``."""
    problem, _, path = message.partition(" - at `")
    problem = problem.replace("`", "'").replace("Object missing required field", "missing field")
    problem = problem[:1].lower() + problem[1:]
    match = re.fullmatch(r"\$(?:\.(\w+))?(?:\[(\d+)\])?((?:\.\w+|\[\d+\])*)`?", path)
    if not path or match is None:
        return problem
    section, index, rest = match.groups()
    record = _RECORD_KINDS.get(section or "", "detection" if section is None else section)
    where = f"{record} #{index}" if index is not None else f"{section!r}"
    field = rest.lstrip(".").split("[")[0]
    return f"{where}: {f'{field!r}: ' if field else ''}{problem}"


def _decoded(value: Any, kind: Any) -> Any:
    """JSON text decoded as ``kind``; parsed data (a list of dicts) converted to it."""
    if isinstance(value, JSON_TEXT):
        return msgspec.json.decode(value, type=kind)
    return msgspec.convert(value, kind)


def record_column(
    records: list[Any], key: str, source: str, kind: str, dtype: Any = np.int64
) -> np.ndarray:
    """The records' ``key`` as a column [N] (decoding checked the type; an int beyond int64 fails)."""
    try:
        return np.fromiter(map(attrgetter(key), records), dtype, len(records))
    except OverflowError:
        index = next(i for i, record in enumerate(records) if abs(getattr(record, key)) >= 2**63)
        raise DataError(
            f"{source}: {kind} #{index}: {key!r} {getattr(records[index], key)} does not fit in 64 bits",
            hint="ids are integers below 2**63",
        ) from None


@dataclass(frozen=True)
class Records:
    """The records of one list in one file (``kind``: 'annotation', 'detection', 'image', ...).

    ``source`` names the file (or ``<predictions>`` for in-memory data) in error messages.
    """

    source: str
    kind: str
    items: Sequence[Any]
    hint: str

    def where(self, index: int) -> str:
        """``"gt.json: annotation #3 (id 17, image_id 42)"``."""
        item = self.items[index]
        keys = [k for k in ("id", "image_id") if isinstance(item, dict) and k in item]
        if self.kind == "detection":  # loadRes renumbers detections; their own ids mean nothing
            keys = [k for k in keys if k != "id"]
        details = ", ".join(f"{k} {item[k]!r}" for k in keys)
        return f"{self.source}: {self.kind} #{index}" + (f" ({details})" if details else "")

    def error(self, index: int, problem: str, hint: str | None = None) -> DataError:
        return DataError(f"{self.where(index)}: {problem}", hint=hint or self.hint)

    def values(self, key: str) -> list[Any]:
        """``[item[key] for item in items]``; a missing key or a non-object names the record."""
        try:
            return [item[key] for item in self.items]
        except (KeyError, TypeError, IndexError):
            for index, item in enumerate(self.items):
                if not isinstance(item, dict):
                    raise self.error(
                        index, f"is not a JSON object ({type(item).__name__})"
                    ) from None
                if key not in item:
                    raise self.error(index, f"has no {key!r}") from None
            raise

    def numbers(self, key: str, values: list[Any] | None = None) -> np.ndarray:
        """The ``key`` of every record as float64 [N]; NaN and non-numbers are errors."""
        values = self.values(key) if values is None else values
        array = np.array(values) if values else np.zeros(0)
        if array.ndim != 1 or array.dtype.kind not in NUMERIC_KINDS:
            self._raise_first(values, key, _is_number, "a number")
        array = array.astype(np.float64)
        self._raise_where(np.isnan(array), key, "is NaN", values)
        return array

    def integers(self, key: str) -> np.ndarray:
        """The ``key`` of every record as int64 [N] (integral floats such as 3.0 are accepted)."""
        return self._integral(key)[1].astype(np.int64, copy=False)

    def ids(self, key: str) -> np.ndarray:
        """The ``key`` of every record as int64 [N]: integers from 0 to ``ID_LIMIT`` (integral
        floats such as 3.0 are accepted)."""
        values, array = self._integral(key)
        if outside_id_range(array).any():  # checked before int64 could wrap a uint64 or a float
            index = int(np.argmax(outside_id_range(array)))
            raise self.error(index, id_range_problem(repr(key), values[index]), ID_HINT)
        return array.astype(np.int64, copy=False)

    def _integral(self, key: str) -> tuple[list[Any], np.ndarray]:
        """The records' ``key`` values and their array [N]: JSON integers as numpy reads them
        (int64, or uint64 beyond it), else float64 holding integral values."""
        values = self.values(key)
        array = np.array(values) if values else np.zeros(0, dtype=np.int64)
        if array.ndim == 1 and array.dtype.kind in "iu":  # the usual case: JSON integers
            return values, array
        array = self.numbers(key, values)
        self._raise_where(
            (array != np.round(array)) | ~np.isfinite(array), key, "is not an integer", values
        )
        return values, array

    def vectors(self, key: str, length: int, values: list[Any] | None = None) -> np.ndarray:
        """The ``key`` of every record as float64 [N, length]: lists of exactly ``length`` numbers."""
        values = self.values(key) if values is None else values
        try:
            array = np.array(values) if values else np.zeros((0, length))
        except ValueError:
            array = None
        if (
            array is None
            or array.ndim != 2
            or array.shape[1] != length
            or array.dtype.kind not in NUMERIC_KINDS
        ):
            self._raise_first(
                values, key, lambda v: _is_vector(v, length), f"a list of {length} numbers"
            )
        array = array.astype(np.float64)
        self._raise_where(~np.isfinite(array).all(axis=1), key, "has a non-finite value", values)
        return array

    def _raise_where(self, bad: np.ndarray, key: str, problem: str, values: list[Any]) -> None:
        if bad.any():
            index = int(np.argmax(bad))
            raise self.error(index, f"{key!r} {problem} ({values[index]!r})")

    def _raise_first(self, values: list[Any], key: str, is_valid, expected: str) -> None:
        for index, value in enumerate(values):
            if not is_valid(value):
                raise self.error(index, f"{key!r} must be {expected}, got {short(value)}")
        raise AssertionError("unreachable: a column failed to convert but every value is valid")


def outside_id_range(ids: np.ndarray) -> np.ndarray:
    """[N] bool: which of ``ids`` [N] (any numeric dtype) are not from 0 to ``ID_LIMIT``."""
    return (ids < 0) | (ids > ID_LIMIT)


def id_range_problem(key: str, value: Any) -> str:
    return f"{key} {value} is not an integer from 0 to 2**53 (the engine's id range)"


def _is_number(value: Any) -> bool:
    """A float that is not NaN, or an int that fits int64 (numpy turns bigger ones into objects)."""
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, float) and value == value


def _is_vector(value: Any, length: int) -> bool:
    return isinstance(value, list) and len(value) == length and all(_is_number(v) for v in value)


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def index_of(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions [N] of ``ids`` in the unique ``sorted_ids`` [M], found [N] bool)."""
    if len(sorted_ids) == 0:
        return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
    low, span = int(sorted_ids[0]), int(sorted_ids[-1]) - int(sorted_ids[0])
    if span <= max(
        4 * len(ids), DENSE_LOOKUP_SPAN
    ):  # a table over the id range: O(N), not O(N log M)
        table = np.full(
            span + 2, -1, dtype=np.int64
        )  # the last slot (-1) takes every id out of range
        table[sorted_ids - low] = np.arange(len(sorted_ids))
        positions = table[np.clip(ids - low, -1, span + 1)]
        return np.maximum(positions, 0), positions >= 0
    positions = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return positions.astype(np.int64), sorted_ids[positions] == ids


def sorted_unique(ids: np.ndarray) -> np.ndarray:
    """``np.unique(ids)`` [U] for a plain 1-d array, without the ``numpy.ma`` import that
    ``np.unique`` makes (start-up time of ``visionflow eval coco`` that hotcoco alone never pays)."""
    ordered = np.sort(ids)
    return (
        ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))] if len(ordered) else ordered
    )
