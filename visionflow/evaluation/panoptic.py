"""Panoptic quality (PQ, SQ, RQ) of COCO panoptic predictions, on hotcoco's ``PanopticEval``.

    result = evaluate_panoptic("panoptic_val2017.json", "panoptic_val2017/",
                               "predictions.json", "predictions/")
    result.metrics["All"]["pq"]        # as panopticapi's pq_compute: All, Things, Stuff, per_class

Both sides are the COCO panoptic format: a JSON file (``images``, ``annotations`` with
``file_name`` and ``segments_info``; the ground truth also ``categories`` with ``isthing``) and a
folder of PNGs whose RGB colours encode segment ids. The JSON files are checked here first (one
clear line per bad record: missing fields, unknown images or categories, missing PNGs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec

from visionflow.errors import DataError

GROUPS = ("All", "Things", "Stuff")
HINT = (
    "COCO panoptic JSON: {images, annotations: [{image_id, file_name, segments_info: [{id, category_id}]}], "
    "categories: [{id, name, isthing}]} beside a folder of PNGs"
)


#: an id the engine takes: it reads every id (image, segment, category) as unsigned
Id = Annotated[int, msgspec.Meta(ge=0)]


class _Segment(msgspec.Struct):
    id: Id
    category_id: Id


class _Annotation(msgspec.Struct):
    image_id: Id
    file_name: str
    segments_info: list[_Segment]


class _Category(msgspec.Struct):
    id: Id
    isthing: int
    name: str = ""


class _Image(msgspec.Struct):
    id: Id


class _GroundTruthFile(msgspec.Struct):
    images: list[_Image]
    annotations: list[_Annotation]
    categories: list[_Category]


class _PredictionFile(msgspec.Struct):
    annotations: list[_Annotation]


@dataclass(frozen=True)
class PanopticResult:
    """``metrics``: {"All" | "Things" | "Stuff": {pq, sq, rq, n}}; ``per_class``: {category id:
    {name, pq, sq, rq, tp, fp, fn}}; ``lines``: panopticapi's table."""

    metrics: dict[str, dict[str, float]]
    per_class: dict[int, dict[str, Any]]
    lines: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {**self.metrics, "per_class": {str(k): v for k, v in self.per_class.items()}}


def evaluate_panoptic(
    gt_json: str | Path, gt_folder: str | Path, pred_json: str | Path, pred_folder: str | Path
) -> PanopticResult:
    """PQ/SQ/RQ for all, things and stuff and per class, as panopticapi's ``pq_compute``."""
    import hotcoco.panoptic

    truth = _decode(Path(gt_json), _GroundTruthFile)
    predictions = _decode(Path(pred_json), _PredictionFile)
    _check(truth, predictions, Path(gt_json), Path(gt_folder), Path(pred_json), Path(pred_folder))
    engine = hotcoco.panoptic.PanopticEval(
        str(gt_json), str(pred_json), gt_folder=str(gt_folder), pred_folder=str(pred_folder)
    )
    try:
        engine.evaluate()
    except (
        ValueError,
        OSError,
    ) as error:  # a PNG that cannot be read, or whose colours name no segment
        raise DataError(f"{pred_folder}: {str(error).splitlines()[0]}", hint=HINT) from None
    results = engine.results()
    names = {category.id: category.name for category in truth.categories}
    per_class = {
        int(c): {"name": names.get(int(c), str(c)), **_as_panopticapi(values)}
        for c, values in results["per_class"].items()
    }
    return PanopticResult(
        {group: dict(results[group]) for group in GROUPS}, per_class, tuple(engine.summary_lines())
    )


def _as_panopticapi(scores: dict[str, Any]) -> dict[str, Any]:
    """One category's engine scores, with panopticapi's pq = sq = rq = 0.0 where the category
    has no tp, fp or fn (the engine gives -1; either way it counts in no average)."""
    if any(scores[key] for key in ("tp", "fp", "fn")):
        return dict(scores)
    return {**scores, "pq": 0.0, "sq": 0.0, "rq": 0.0}


def _decode(path: Path, kind: Any) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: no such file", hint=HINT)
    try:
        return msgspec.json.decode(path.read_bytes(), type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise DataError(f"{path}: {str(error).replace('`', chr(39))}", hint=HINT) from None


def _check(
    truth: _GroundTruthFile,
    predictions: _PredictionFile,
    gt_json: Path,
    gt_folder: Path,
    pred_json: Path,
    pred_folder: Path,
) -> None:
    """Known images and categories, one prediction per image, every PNG present."""
    categories = {category.id for category in truth.categories}
    images = {annotation.image_id for annotation in truth.annotations}
    for folder, json_path, records in (
        (gt_folder, gt_json, truth.annotations),
        (pred_folder, pred_json, predictions.annotations),
    ):
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder", hint=f"the PNG folder of {json_path}")
        for index, annotation in enumerate(records):
            where = f"{json_path}: annotation #{index} (image_id {annotation.image_id})"
            if annotation.image_id not in images:
                raise DataError(
                    f"{where}: image_id {annotation.image_id} is not in the ground truth", hint=HINT
                )
            if not (folder / annotation.file_name).is_file():
                raise DataError(f"{where}: {folder / annotation.file_name}: no such PNG", hint=HINT)
            for segment in annotation.segments_info:
                if segment.category_id not in categories:
                    raise DataError(
                        f"{where}: segment {segment.id}: category_id {segment.category_id} is not "
                        f"in {gt_json}'s categories",
                        hint=HINT,
                    )
    predicted = [annotation.image_id for annotation in predictions.annotations]
    missing = sorted(images - set(predicted))
    if missing or len(predicted) != len(set(predicted)):
        problem = (
            f"no prediction for image_id {missing[0]}" if missing else "an image is predicted twice"
        )
        raise DataError(
            f"{pred_json}: {problem}", hint="give exactly one annotation per ground-truth image"
        )
