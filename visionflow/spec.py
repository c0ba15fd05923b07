"""The pipeline spec: typed, frozen, loaded from YAML with ``safe_load``, checked before anything runs.

    name: digits_lenet
    seed: 0
    task: {name: image_classification, args: {net: lenet5, lr: 0.01}}
    data: {name: digits, args: {batch_size: 64}}
    trainer: {max_epochs: 10}          # keyword arguments of lightning.pytorch.Trainer
    stages: [fit, test]                # or {knn: {k: 3}} for a stage with arguments
    resources: {backend: local}
    output_dir: runs

Every error names the key path and, where one is close, a suggestion:
``data.args.batch_sise: unknown key; did you mean 'batch_size'?``
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from visionflow.arguments import check_arguments, check_trainer_keys
from visionflow.batches import provided_arguments
from visionflow.errors import SpecError, UnknownNameError, not_utf8
from visionflow.overrides import apply_overrides, read_yaml, with_values
from visionflow.registry import DATAMODULES, STAGES, TASKS, Registry, did_you_mean
from visionflow.stage_requirements import check_stage_fits
from visionflow.typecheck import check_value, describe

__all__ = [
    "ComponentSpec",
    "PipelineSpec",
    "ResourcesSpec",
    "StageSpec",
    "SweepSpec",
    "apply_overrides",
    "check_arguments",
    "load_spec",
    "parse_spec",
    "read_yaml",
    "sweep_examples",
    "with_values",
]


@dataclass(frozen=True)
class ComponentSpec:
    """A registered builder by name, with the keyword arguments it is built with."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageSpec:
    """One stage of the pipeline (``fit``, ``test``, ``knn``...) with its arguments."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResourcesSpec:
    """Where the pipeline runs. ``local``: in this process, no Ray. ``ray``: Ray Train workers,
    placed ``pack`` (as few nodes as possible) or ``spread``, training with ``strategy`` ``ddp``
    (replicated model) or ``fsdp`` (sharded model, GPUs only); a fit that loses a worker restarts
    from its last checkpoint up to ``max_failures`` times."""

    backend: Literal["local", "ray"] = "local"
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: int = 1
    gpus_per_worker: float = 1.0
    placement: Literal["pack", "spread"] = "pack"
    max_failures: int = 0
    strategy: Literal["ddp", "fsdp"] = "ddp"


#: the largest seed (NumPy's, which Lightning's ``seed_everything`` seeds, are 32-bit)
MAX_SEED = 2**32 - 1

SAMPLERS = ("grid", "choice", "uniform", "loguniform", "randint")


@dataclass(frozen=True)
class SweepSpec:
    """A hyperparameter search on Ray Tune: each key path of ``parameters`` maps to one sampler,
    ``{grid: [...]}``, ``{choice: [...]}``, ``{uniform: [lo, hi]}``, ``{loguniform: [lo, hi]}`` or
    ``{randint: [lo, hi]}``; every trial is a full run of the spec with those values set."""

    parameters: dict[str, dict[str, Any]]
    metric: str = "val/loss"
    mode: Literal["min", "max"] = "min"
    num_samples: int = 1
    scheduler: Literal["none", "asha"] = "none"
    max_concurrent: int = 1


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    task: ComponentSpec
    data: ComponentSpec
    seed: int = 0
    trainer: dict[str, Any] = field(default_factory=dict)
    stages: tuple[StageSpec, ...] = (StageSpec("fit"), StageSpec("test"))
    resources: ResourcesSpec = ResourcesSpec()
    output_dir: str = "runs"
    sweep: SweepSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data, the inverse of :func:`parse_spec` (stages without args as bare names)."""
        raw = dataclasses.asdict(self)
        raw["stages"] = [s.name if not s.args else {s.name: dict(s.args)} for s in self.stages]
        if self.sweep is None:
            del raw["sweep"]
        return raw

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> PipelineSpec:
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------------------- loading


def load_spec(path: str | Path, overrides: Iterable[str] = ()) -> PipelineSpec:
    """Read a YAML spec, apply ``a.b=c`` overrides, validate everything, return the frozen spec."""
    raw = apply_overrides(read_spec_file(path), overrides)
    return parse_spec(raw, source=str(path))


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file (a spec, or a section of one), not validated yet; SpecError
    naming the file (and line) when it is missing, unreadable or not a mapping."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(
            f"{path}: no such spec file",
            hint="give the path of a pipeline YAML, e.g. examples/digits_classification.yaml",
        ) from None
    except OSError as error:
        raise SpecError(f"{path}: cannot read the spec ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: {not_utf8(error)}", hint="save the spec as UTF-8 YAML") from None
    try:
        raw = read_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{path}{where}: invalid YAML: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the spec must be a mapping of keys, got {describe(raw)}")
    return raw


# ------------------------------------------------------------------------------------- validation


def parse_spec(raw: Mapping[str, Any], source: str = "<spec>") -> PipelineSpec:
    """Validate plain data against the spec's schema and the registries; raise SpecError."""
    prefix = f"{source}: " if source else ""
    try:
        spec = _upgraded(_parse(raw))
        _check_all(spec)
        if spec.sweep is not None:
            _check_sweep_paths(raw, spec.sweep)
    except SpecError as error:
        raise type(error)(prefix + error.message, hint=error.hint) from None
    return spec


def _upgraded(spec: PipelineSpec) -> PipelineSpec:
    """``spec`` with the task's deprecated argument keys replaced (one line about each)."""
    builder = _lookup(TASKS, spec.task.name, "task.name").builder
    upgrade = getattr(builder, "upgrade_arguments", None)  # VisionTask's; a plain module has none
    if upgrade is None:
        return spec
    args = upgrade(spec.task.args, "task.args")
    return (
        spec if args == spec.task.args else spec.replace(task=ComponentSpec(spec.task.name, args))
    )


def _check_all(spec: PipelineSpec) -> None:
    _check_components(spec)
    check_trainer_keys(spec.trainer)


def _parse(raw: Mapping[str, Any]) -> PipelineSpec:
    _check_keys(raw, PipelineSpec, "")
    for key in ("name", "task", "data"):
        if key not in raw:
            raise SpecError(
                f"{key}: required key is missing", hint="a spec needs at least name, task and data"
            )
    values: dict[str, Any] = {
        "name": _typed(raw["name"], str, "name"),
        "task": _component(raw["task"], "task"),
        "data": _component(raw["data"], "data"),
    }
    if "seed" in raw:
        values["seed"] = _checked_seed(_typed(raw["seed"], int, "seed"))
    if "trainer" in raw:
        values["trainer"] = dict(_typed(raw["trainer"] or {}, dict, "trainer"))
    if "stages" in raw:
        values["stages"] = _stages(raw["stages"])
    if "resources" in raw:
        values["resources"] = _resources(raw["resources"] or {})
    if "output_dir" in raw:
        values["output_dir"] = _typed(raw["output_dir"], str, "output_dir")
    if raw.get("sweep") is not None:
        values["sweep"] = _sweep(raw["sweep"])
    if not values["name"] or "/" in values["name"]:
        raise SpecError(f"name: {values['name']!r} must be a non-empty name without '/'")
    return PipelineSpec(**values)


def _checked_seed(seed: int) -> int:
    """``seed``, or a SpecError unless NumPy can be seeded with it."""
    if not 0 <= seed <= MAX_SEED:
        raise SpecError(f"seed: must be 0..{MAX_SEED}, got {seed}", hint="NumPy takes 32-bit seeds")
    return seed


def _typed(value: Any, annotation: Any, path: str) -> Any:
    problem = check_value(value, annotation)
    if problem:
        raise SpecError(f"{path}: {problem}")
    return value


def _check_keys(raw: Mapping[str, Any], cls: type, path: str) -> None:
    allowed = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise SpecError(
                f"{where}: unknown key{did_you_mean(str(key), allowed)}",
                hint="allowed keys: " + ", ".join(allowed),
            )


def _component(raw: Any, path: str) -> ComponentSpec:
    if isinstance(raw, str):
        return ComponentSpec(raw)
    _typed(raw, dict, path)
    _check_keys(raw, ComponentSpec, path)
    if "name" not in raw:
        listing = "tasks" if path == "task" else "datamodules"
        raise SpecError(
            f"{path}.name: required key is missing",
            hint=f"`visionflow list {listing}` shows the names",
        )
    args = raw.get("args") or {}
    return ComponentSpec(
        _typed(raw["name"], str, f"{path}.name"), dict(_typed(args, dict, f"{path}.args"))
    )


def _stages(raw: Any) -> tuple[StageSpec, ...]:
    _typed(raw, list, "stages")
    stages = []
    for index, item in enumerate(raw):
        path = f"stages[{index}]"
        if isinstance(item, str):
            stages.append(StageSpec(item))
        elif isinstance(item, dict) and len(item) == 1:
            ((name, args),) = item.items()
            stages.append(StageSpec(str(name), dict(_typed(args or {}, dict, f"{path}.{name}"))))
        else:
            raise SpecError(
                f"{path}: expected a stage name or {{name: {{args}}}}, got {describe(item)}"
            )
    if not stages:
        raise SpecError("stages: empty list", hint="e.g. stages: [fit, test]")
    return tuple(stages)


def _sweep(raw: Any) -> SweepSpec:
    _typed(raw, dict, "sweep")
    _check_keys(raw, SweepSpec, "sweep")
    if not raw.get("parameters"):
        raise SpecError(
            "sweep.parameters: required, a mapping of key paths to samplers",
            hint="e.g. sweep: {parameters: {task.args.lr: {grid: [0.01, 0.001]}}}",
        )
    hints = typing.get_type_hints(SweepSpec)
    for key, value in raw.items():
        _typed(value, hints[key], f"sweep.{key}")
    for path, sampler in raw["parameters"].items():
        _check_sampler(path, sampler)
    sweep = SweepSpec(**raw)
    if sweep.num_samples < 1 or sweep.max_concurrent < 1:
        raise SpecError("sweep: num_samples and max_concurrent must be >= 1")
    return sweep


def _check_sampler(path: str, sampler: Any) -> None:
    where = f"sweep.parameters.{path}"
    if not isinstance(sampler, dict) or len(sampler) != 1:
        raise SpecError(
            f"{where}: expected one sampler, e.g. {{grid: [1, 2]}}, got {describe(sampler)}",
            hint="samplers: " + ", ".join(SAMPLERS),
        )
    ((kind, values),) = sampler.items()
    if kind not in SAMPLERS:
        raise SpecError(
            f"{where}: unknown sampler {kind!r}{did_you_mean(str(kind), SAMPLERS)}",
            hint="samplers: " + ", ".join(SAMPLERS),
        )
    if not isinstance(values, list) or not values:
        raise SpecError(f"{where}.{kind}: expected a non-empty list, got {describe(values)}")
    if kind in ("uniform", "loguniform", "randint") and len(values) != 2:
        raise SpecError(f"{where}.{kind}: expected [low, high], got {values!r}")


def sweep_examples(sweep: SweepSpec) -> dict[str, Any]:
    """One value of each swept key path (the first of a list, the low end of a range)."""
    return {path: next(iter(sampler.values()))[0] for path, sampler in sweep.parameters.items()}


def _check_sweep_paths(raw: Mapping[str, Any], sweep: SweepSpec) -> None:
    """Each swept key path, set to an example value, must give a valid spec."""
    base = {k: v for k, v in raw.items() if k != "sweep"}
    for path, value in sweep_examples(sweep).items():
        try:
            _check_all(_upgraded(_parse(with_values(base, {path: value}))))
        except SpecError as error:
            raise SpecError(f"sweep.parameters.{path}: {error.message}", hint=error.hint) from None


def _resources(raw: Any) -> ResourcesSpec:
    _typed(raw, dict, "resources")
    _check_keys(raw, ResourcesSpec, "resources")
    hints = typing.get_type_hints(ResourcesSpec)
    for key, value in raw.items():
        _typed(value, hints[key], f"resources.{key}")
    resources = ResourcesSpec(**raw)
    if resources.num_workers < 1 or resources.cpus_per_worker < 1:
        raise SpecError("resources: num_workers and cpus_per_worker must be >= 1")
    if resources.gpus_per_worker <= 0 or resources.max_failures < 0:
        raise SpecError(
            "resources: gpus_per_worker must be > 0 and max_failures >= 0",
            hint="max_failures: how often Ray Train restarts a failed fit from its "
            "last checkpoint (0: never)",
        )
    if resources.strategy == "fsdp" and not resources.use_gpu:
        raise SpecError(
            "resources.strategy: fsdp shards the model over GPUs, and use_gpu is false",
            hint="set resources.use_gpu: true, or strategy: ddp on CPUs",
        )
    return resources


def _check_components(spec: PipelineSpec) -> None:
    task = _lookup(TASKS, spec.task.name, "task.name")
    data = _lookup(DATAMODULES, spec.data.name, "data.name")
    check_arguments(
        task.builder,
        spec.task.args,
        "task.args",
        provided=provided_arguments(task.tags.get("batch")),
    )
    check_arguments(data.builder, spec.data.args, "data.args")
    task_batch, data_batch = task.tags.get("batch"), data.tags.get("batch")
    if task_batch is not data_batch:
        fits = [e.name for e in DATAMODULES.entries() if e.tags.get("batch") is task_batch]
        raise SpecError(
            f"data.name: datamodule {spec.data.name!r} yields {_batch_name(data_batch)} but task "
            f"{spec.task.name!r} consumes {_batch_name(task_batch)}",
            hint="datamodules that fit this task: " + (", ".join(fits) or "none registered"),
        )
    for index, stage in enumerate(spec.stages):
        entry = _lookup(STAGES, stage.name, f"stages[{index}]")
        check_arguments(entry.builder, stage.args, f"stages[{index}].{stage.name}", skip=1)
        check_stage_fits(entry, task, data, f"stages[{index}].{stage.name}")


def _batch_name(batch: Any) -> str:
    return getattr(batch, "__name__", str(batch))


def _lookup(registry: Registry, name: str, path: str):
    try:
        return registry.get(name)
    except UnknownNameError as error:
        raise UnknownNameError(f"{path}: {error.message}", hint=error.hint) from None
