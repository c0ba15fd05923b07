"""The ``evaluate`` stage on Ray: one Ray task per shard, scored in the driver.

    from visionflow.pipelines import run
    from visionflow.cluster import RayEvaluationBackend, embedded_ray
    with embedded_ray():
        run(spec, evaluation_backend=RayEvaluationBackend())   # stages: [{evaluate: {shards: 4}}]

Driver (:class:`RayEvaluationBackend`)          Ray worker, one per shard
--------------------------------------          -------------------------
the task's weights -> object store (once)       import the modules that registered the spec's
config = spec (local paths made absolute),      task and datamodule; parse_spec; seed; build
  split, device, modules to import              datamodule and task; load the weights; run
one Ray task per shard (resources.cpus_per_     ``task.evaluation_step`` over the shard's whole
  worker CPUs, gpus_per_worker GPUs if          batches (``pipelines.evaluation.evaluate_shard``)
  use_gpu) --------------------------------->
ShardOutputs in shard order  <-------------     return (predictions, targets) pairs
  -> one evaluator, as with one process

A worker that dies is retried ``resources.max_failures`` times (its shard is recomputed, so the
result is unchanged); an exception in a shard is one short VisionFlow error naming the shard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionflow.cluster.jobs import with_absolute_paths
from visionflow.cluster.train import check_capacity, imports_for
from visionflow.cluster.train_worker import WorkerFailure, import_driver_modules
from visionflow.errors import RunError, VisionFlowError
from visionflow.pipelines.evaluation import ShardOutput, Split


class RayEvaluationBackend:
    """Runs the shards as Ray tasks, as many at once as the cluster has room for. Needs a running
    Ray (``ray.init`` or :func:`visionflow.cluster.embedded_ray`)."""

    def run_shards(self, context: Any, split: Split, shards: list[range]) -> list[ShardOutput]:
        import ray

        if not ray.is_initialized():
            raise RunError(
                "RayEvaluationBackend: Ray is not running",
                hint="wrap the run in `with visionflow.cluster.embedded_ray():` or "
                "call ray.init(address=...) first",
            )
        resources = context.spec.resources
        per_shard = {
            "CPU": resources.cpus_per_worker,
            **({"GPU": resources.gpus_per_worker} if resources.use_gpu else {}),
        }
        check_capacity(1, per_shard, "each evaluation shard")
        remote = ray.remote(evaluate_shard_in_worker).options(
            num_cpus=per_shard["CPU"],
            num_gpus=per_shard.get("GPU", 0),
            max_retries=resources.max_failures,
            retry_exceptions=False,
        )
        weights = ray.put({k: v.detach().cpu() for k, v in context.task.state_dict().items()})
        config = shard_config(context, split)
        pending = {
            remote.remote(config, weights, index, samples.start, samples.stop): index
            for index, samples in enumerate(shards)
        }
        return _gather(pending, len(shards))


def shard_config(context: Any, split: Split) -> dict[str, Any]:
    """The plain data a shard's worker needs."""
    spec = with_absolute_paths(context.spec, Path.cwd())
    return {
        "spec": spec.to_dict(),
        "split": split,
        "use_gpu": spec.resources.use_gpu,
        "precision": spec.trainer.get("precision", "32-true"),
        **imports_for(spec),
    }


def _gather(pending: dict[Any, int], count: int) -> list[ShardOutput]:
    """Every shard's output in shard order, printing each as it finishes."""
    import ray

    outputs: dict[int, ShardOutput] = {}
    try:
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(ready)
            outputs[index] = _result(ready, index)
            output = outputs[index]
            print(
                f"evaluate: shard {index + 1}/{count} done: {output.num_samples} samples in "
                f"{output.seconds:.1f} s",
                flush=True,
            )
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
    return [outputs[index] for index in range(count)]


def _result(ref: Any, index: int) -> ShardOutput:
    """The shard's output, or one short VisionFlow error naming the shard."""
    import ray
    from ray.exceptions import RayTaskError, WorkerCrashedError

    where = f"evaluation shard {index}"
    try:
        return ray.get(ref)
    except RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, WorkerFailure) and cause.error is not None:
            original: VisionFlowError = cause.error
            raise type(original)(f"{original.message} [on {where}]", hint=original.hint) from None
        summary = (
            f"{cause.type_name}: {cause.message}"
            if isinstance(cause, WorkerFailure)
            else str(error).strip().splitlines()[-1]
        )
        raise RunError(
            f"{where} failed: {summary}", hint="the Ray worker's traceback is in the log above"
        ) from None
    except WorkerCrashedError:
        raise RunError(
            f"{where}: its Ray worker died (killed or out of memory) and was not retried",
            hint="raise resources.max_failures to retry a lost shard",
        ) from None


def evaluate_shard_in_worker(
    config: dict[str, Any], weights: dict[str, Any], index: int, start: int, stop: int
) -> ShardOutput:
    """Runs in a Ray worker: rebuild the run's datamodule and task, score one shard."""
    try:
        return _evaluate_shard(config, weights, index, range(start, stop))
    except Exception as error:
        raise WorkerFailure.wrap(error) from None


def _evaluate_shard(
    config: dict[str, Any], weights: dict[str, Any], index: int, samples: range
) -> ShardOutput:
    import torch

    from visionflow.pipelines import build_datamodule, build_task, seed_everything
    from visionflow.pipelines.evaluation import evaluate_shard, split_loader
    from visionflow.spec import parse_spec

    import_driver_modules(config)
    spec = parse_spec(config["spec"], source="")
    seed_everything(spec.seed)
    datamodule = build_datamodule(spec)
    datamodule.prepare_data()
    task = build_task(spec, datamodule.info)
    task.load_state_dict(weights)
    device = torch.device("cuda", 0) if config["use_gpu"] else torch.device("cpu")
    return evaluate_shard(
        task, split_loader(datamodule, config["split"]), samples, index, device, config["precision"]
    )
