"""Turn a validated spec into the objects a run needs: datamodule, task, trainer.

The same functions build a run in this process (``backend: local``) and inside each Ray Train
worker (``visionflow.cluster``), so both backends train exactly the same thing.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint

from visionflow.arguments import parameters_of
from visionflow.batches import provided_arguments
from visionflow.errors import SpecError
from visionflow.registry import DATAMODULES, STAGES, TASKS
from visionflow.rundir import RunDirectory
from visionflow.spec import ComponentSpec, PipelineSpec, StageSpec

PLAIN_TYPES = (bool, int, float, str, type(None))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (and dataloader workers) for a reproducible run."""
    from lightning.pytorch import seed_everything as lightning_seed

    lightning_seed(seed, workers=True, verbose=False)


def build_datamodule(spec: PipelineSpec):
    """The spec's datamodule; its ``seed`` defaults to the spec's seed. Errors name the spec key
    (``data.args.<argument>``)."""
    builder = DATAMODULES.get(spec.data.name).builder
    args = dict(spec.data.args)
    if any(p.name == "seed" for p in parameters_of(builder)):
        args.setdefault("seed", spec.seed)
    try:
        return builder(**args)
    except SpecError as error:
        raise error.under("data.args") from None


def build_task(spec: PipelineSpec, info: Any):
    """The spec's task, given the datamodule's ``DatasetInfo`` for what the spec leaves out.
    Errors name the spec key (``task.args.<argument>``)."""
    builder = TASKS.get(spec.task.name).builder
    accepted = {p.name for p in parameters_of(builder)}
    from_data = {k: v for k, v in info.task_kwargs().items() if k in accepted}
    try:
        return builder(**{**from_data, **spec.task.args})
    except SpecError as error:
        raise error.under("task.args") from None


def resolve_spec(spec: PipelineSpec) -> PipelineSpec:
    """The spec with every omitted argument of task, data and stages written out with its default,
    so ``spec.resolved.yaml`` alone reproduces the run even if a default changes later."""
    task = TASKS.get(spec.task.name)
    return spec.replace(
        task=_with_defaults(
            spec.task, task.builder, skip=provided_arguments(task.tags.get("batch"))
        ),
        data=_with_defaults(spec.data, DATAMODULES.get(spec.data.name).builder),
        stages=tuple(
            StageSpec(
                s.name,
                _with_defaults(
                    ComponentSpec(s.name, s.args), STAGES.get(s.name).builder, first=1
                ).args,
            )
            for s in spec.stages
        ),
    )


def _with_defaults(
    component: ComponentSpec, builder: Any, skip: Sequence[str] = (), first: int = 0
) -> ComponentSpec:
    args: dict[str, Any] = {}
    configs = set()
    for p in parameters_of(builder, first):
        if p.default is inspect.Parameter.empty or p.name in skip:
            continue
        if _is_config(p.default):
            args[p.name] = dataclasses.asdict(p.default)
            configs.add(p.name)
        elif _is_plain(p.default):
            args[p.name] = p.default
    for key, value in component.args.items():  # a config given in part keeps its other defaults
        if key in configs and isinstance(value, str):
            value = {"name": value}
        args[key] = {**args[key], **value} if key in configs and isinstance(value, dict) else value
    return dataclasses.replace(component, args=args)


def _is_config(value: Any) -> bool:
    """A config dataclass default, e.g. ``OptimizerConfig()``."""
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _is_plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return isinstance(value, PLAIN_TYPES)


def build_trainer(
    spec: PipelineSpec,
    run_dir: RunDirectory,
    *,
    fit: bool,
    monitor=None,
    strategy: Any = None,
    plugins: Sequence[Any] = (),
    callbacks: Sequence[Any] = (),
    **overrides: Any,
):
    """A ``lightning.pytorch.Trainer`` logging into ``run_dir`` (CSV + TensorBoard).

    ``fit=True`` adds checkpointing (``checkpoints/last.ckpt`` and the best by ``monitor``) written
    atomically; evaluation trainers run on one device. ``strategy``, ``plugins`` and ``callbacks``
    let the Ray backend plug in its DDP strategy and environment."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import TensorBoardLogger

    from visionflow.pipelines.console import quiet_lightning_notices
    from visionflow.pipelines.csv_logging import AppendingCSVLogger
    from visionflow.pipelines.nonfinite import NonFiniteLossCheck

    kwargs: dict[str, Any] = {"enable_model_summary": False, **spec.trainer}
    if not spec.resources.use_gpu and spec.resources.backend == "ray":
        kwargs.setdefault("accelerator", "cpu")
    all_callbacks = [*callbacks, RunDirectoryGuard(run_dir)]
    all_plugins = [AtomicCheckpointIO(), *plugins]
    if fit:
        metric, mode = monitor or (None, "min")
        # before the checkpoint of a bad epoch; the mode is the fit stage's argument, read from
        # the spec so that Ray workers, which get the spec, check as a local fit does
        all_callbacks.append(
            NonFiniteLossCheck(fit_stage_arguments(spec).get("on_non_finite_loss", "stop"))
        )
        all_callbacks.append(
            RunDirectoryCheckpoint(
                dirpath=run_dir.checkpoints,
                save_last=True,
                monitor=metric,
                mode=mode,
                filename="best-epoch{epoch:03d}",
                auto_insert_metric_name=False,
                # a fit restarted from scratch in the same run (a Ray worker that died after
                # writing last.ckpt, before Ray recorded it) must overwrite last.ckpt, not leave
                # it behind at the dead attempt's epoch and write last-v1.ckpt beside it
                enable_version_counter=False,
            )
        )
        all_callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    else:
        kwargs.update(devices=1, num_nodes=1)
        for key in ("max_epochs", "min_epochs", "max_steps", "max_time", "check_val_every_n_epoch"):
            kwargs.pop(key, None)
    kwargs.update(overrides)
    if strategy is not None:
        kwargs["strategy"] = strategy
    quiet_lightning_notices()
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings(
        "ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*"
    )
    warnings.filterwarnings(
        "ignore", message=".*overridden `on_before_batch_transfer` in `LightningModule`.*"
    )
    try:
        return Trainer(
            default_root_dir=run_dir.path,
            logger=[
                AppendingCSVLogger(run_dir.path, name="", version=""),
                TensorBoardLogger(run_dir.path, name="tensorboard", version=""),
            ],
            callbacks=all_callbacks,
            plugins=all_plugins,
            enable_checkpointing=fit,
            **kwargs,
        )
    except (ValueError, TypeError) as error:  # Lightning's own check of a trainer value
        raise SpecError(f"trainer: {error}") from None


def fit_stage_arguments(spec: PipelineSpec) -> dict[str, Any]:
    """The arguments the spec gives its ``fit`` stage (none without one)."""
    return next((dict(stage.args) for stage in spec.stages if stage.name == "fit"), {})


class RunDirectoryGuard(Callback):
    """Stops a fit or evaluation within a step of its run directory being deleted (a ``stat``
    a step), before Lightning's writers make parts of the folder again or fail one by one."""

    def __init__(self, run_dir: RunDirectory):
        self.run_dir = run_dir

    def _check(self, *_: Any) -> None:
        deleted = self.run_dir.deleted()
        if deleted is not None:
            raise deleted

    on_train_batch_end = on_validation_batch_end = on_test_batch_end = _check
    on_train_epoch_end = on_validation_end = _check


class RunDirectoryCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` that also remembers, on resume, the best checkpoint of a
    run directory that has moved since its ``last.ckpt`` was written (copied elsewhere, or an
    ``s3://`` run staged in another folder): its paths are taken as files of this run's
    ``checkpoints/``. (Lightning forgets the best score of another ``dirpath``, so the first
    resumed epoch became "best" beside the real best.)"""

    @property
    def state_key(self) -> str:
        """Lightning's own key, so that runs checkpointed before this class resume as well."""
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("dirpath")
        if saved and self.dirpath and saved != self.dirpath:
            state_dict = _rebased_checkpoint_paths(state_dict, Path(saved), Path(self.dirpath))
        super().load_state_dict(state_dict)


def _rebased_checkpoint_paths(state: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
    """``ModelCheckpoint`` state with every checkpoint path in ``old`` moved into ``new``."""

    def moved(path: Any) -> Any:
        if isinstance(path, str) and path and Path(path).parent == old:
            return str(new / Path(path).name)
        return path

    rebased = {key: moved(value) for key, value in state.items()}
    rebased["dirpath"] = str(new)
    if isinstance(state.get("best_k_models"), dict):
        rebased["best_k_models"] = {moved(k): v for k, v in state["best_k_models"].items()}
    return rebased


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, but a kill mid-save never leaves a truncated ``.ckpt``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options=None) -> None:
        path = Path(path)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            super().save_checkpoint(checkpoint, temp, storage_options)
            os.replace(temp, path)
        except BaseException as error:  # a full disk: no half-written temp file stays behind
            temp.unlink(missing_ok=True)
            if isinstance(error, OSError) and error.filename == str(temp):
                error.filename = str(path)  # name the checkpoint, not its temp file
            raise

    def load_checkpoint(self, path: Any, map_location=None, weights_only: bool | None = None):
        return super().load_checkpoint(
            path,
            map_location=map_location,
            weights_only=True if weights_only is None else weights_only,
        )
